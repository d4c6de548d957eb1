"""The pod half of the Deployment controller: which pods to create and delete, and the status.

``plan_pods(deploy, pods, now, name_suffix)`` is pure: given the Deployment and the pods it
controls (by owner uid), it returns the creates, deletes and events that move the pods one step
toward ``spec.replicas`` of ``spec.template``, and the status they lead to. Pods carry the
template labels plus ``shoal.io/template-hash``; pods of an older hash are replaced by a rolling
update honouring ``maxSurge`` (rounded up) and ``maxUnavailable`` (rounded down) and counting
only Ready pods (or all at once for ``Recreate``). Failed and Succeeded pods are deleted and
replaced; pods marked for deletion are not counted. It never reads the store, and knows nothing
of revisions, deadlines or rollbacks (``deployment`` and ``rollout_*`` do).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from shoal.controllers.actions import Action, Create, EmitEvent, delete_of, parse_time, ref_of, rfc3339
from shoal.model import (
    Condition,
    Deployment,
    ObjectMeta,
    ObjectReference,
    OwnerReference,
    Pod,
    PodPhase,
    PodTemplateSpec,
    condition,
    set_condition,
)
from shoal.model.workloads import LABEL_TEMPLATE_HASH, DeploymentStatus, StrategyType

NameSuffix = Callable[[], str]
_ALPHABET = string.ascii_lowercase + string.digits
_MAX_NAME = 253


def random_suffix() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(5))


def template_hash(template: PodTemplateSpec) -> str:
    """10 hex chars of sha256 over the template's key-sorted JSON: stable across map orderings."""
    encoded = msgspec.json.encode(msgspec.to_builtins(template), order="sorted")
    return hashlib.sha256(encoded).hexdigest()[:10]


def is_ready(pod: Pod) -> bool:
    if pod.status.phase != PodPhase.RUNNING or not pod.spec.node_name:
        return False
    ready = condition(pod.status.conditions, "Ready")
    return ready is not None and ready.status == "True"


def _ready_since(pod: Pod) -> datetime | None:
    ready = condition(pod.status.conditions, "Ready")
    return None if ready is None else parse_time(ready.last_transition_time)


def resolve(value: int | str, total: int, *, round_up: bool) -> int:
    """An int, or a percentage of ``total`` ("25%"), as Kubernetes resolves maxSurge/maxUnavailable."""
    if isinstance(value, int):
        return max(value, 0)
    text = value.strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1]) * total / 100
        except ValueError:
            return 0
        return max(math.ceil(share) if round_up else math.floor(share), 0)
    try:
        return max(int(text), 0)
    except ValueError:
        return 0


def scale_down_order(pods: Iterable[Pod]) -> list[Pod]:
    """Pods in the order to remove them: unscheduled first, then not ready, then newest first."""
    by_age = sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name), reverse=True)
    return sorted(by_age, key=lambda p: (bool(p.spec.node_name), is_ready(p)))


def _is_gone(pod: Pod) -> bool:
    return bool(pod.metadata.deletion_timestamp)


def _is_finished(pod: Pod) -> bool:
    return pod.status.phase in (PodPhase.FAILED, PodPhase.SUCCEEDED)


def new_pod(deploy: Deployment, pod_hash: str, suffix: str) -> Pod:
    template = deploy.spec.template
    prefix = f"{deploy.metadata.name}-{pod_hash}"[: _MAX_NAME - len(suffix) - 1]
    labels = {**template.metadata.labels, LABEL_TEMPLATE_HASH: pod_hash}
    owner = OwnerReference(api_version=deploy.api_version, kind="Deployment", name=deploy.metadata.name,
                           uid=deploy.metadata.uid, controller=True, block_owner_deletion=True)
    metadata = ObjectMeta(name=f"{prefix}-{suffix}", namespace=deploy.metadata.namespace, labels=labels,
                          annotations=dict(template.metadata.annotations), owner_references=[owner])
    return Pod(metadata=metadata, spec=template.spec)


EVENT_NAMES_SHOWN = 3


def _summary(me: ObjectReference, reason: str, verb: str, names: list[str]) -> list[EmitEvent]:
    """One event per pod for a few pods; one summary event for a bulk change (a scale to 10,000
    would otherwise write 10,000 events)."""
    if len(names) <= EVENT_NAMES_SHOWN:
        return [EmitEvent(me, reason, f"{verb} pod {name}") for name in names]
    shown = ", ".join(names[:EVENT_NAMES_SHOWN])
    return [EmitEvent(me, reason, f"{verb} {len(names)} pods: {shown}, ...")]


@dataclass(frozen=True)
class PodPlan:
    """The pod writes and events of one reconcile, and the status they lead to."""

    steps: list[Action]
    status: DeploymentStatus
    requeue_after: float | None
    updated: list[Pod]  # kept pods of the current template
    ready: list[Pod]  # kept pods that are ready


def plan_pods(deploy: Deployment, pods: Sequence[Pod], now: datetime,
              name_suffix: NameSuffix = random_suffix, max_updated: int | None = None) -> PodPlan:
    """The pod creates/deletes (and their events) that move toward ``spec.replicas`` of ``spec.template``;
    ``max_updated`` caps the pods of the new template (a canary step) while old pods remain."""
    spec = deploy.spec
    want = max(spec.replicas, 0)
    pod_hash = template_hash(spec.template)
    steps: list[Action] = []
    deleted: set[str] = set()
    removed: list[str] = []
    me = ref_of(deploy)

    def delete(pod: Pod, why: str) -> None:
        deleted.add(pod.metadata.name)
        steps.append(delete_of(pod))
        removed.append(f"{pod.metadata.name}{why}")

    live = [p for p in pods if not _is_gone(p)]
    for pod in live:
        if _is_finished(pod):
            delete(pod, f" ({pod.status.phase})")
    alive = [p for p in live if not _is_finished(p)]
    current = [p for p in alive if p.metadata.labels.get(LABEL_TEMPLATE_HASH) == pod_hash]
    old = scale_down_order(p for p in alive if p.metadata.labels.get(LABEL_TEMPLATE_HASH) != pod_hash)
    creates = 0
    if spec.strategy.type == StrategyType.RECREATE:
        for pod in old:
            delete(pod, " (recreate)")
        if not old:
            creates = max(want - len(current), 0)
    else:
        surge, unavailable = rolling_bounds(deploy)
        if not old:
            creates = max(want - len(current), 0)
        else:
            cap = want if max_updated is None else max(min(max_updated, want), 0)
            creates = max(min(want - len(current), want + surge - len(current) - len(old), cap - len(current)), 0)
            for pod in [p for p in old if not is_ready(p)]:
                delete(pod, " (old template)")
            ready_total = sum(1 for p in current if is_ready(p)) + sum(1 for p in old if is_ready(p))
            ready_old = sum(1 for p in old if is_ready(p))
            budget = min(ready_total - (want - unavailable), ready_old - (want - cap))
            for pod in [p for p in old if is_ready(p)]:
                if budget <= 0:
                    break
                delete(pod, " (old template)")
                budget -= 1
    if len(current) > want:  # sorting 10,000 pods on every reconcile only to keep them all is waste
        for pod in scale_down_order(current)[: len(current) - want]:
            delete(pod, " (scale down)")
    added = [new_pod(deploy, pod_hash, name_suffix()) for _ in range(creates)]
    steps.extend(Create(pod) for pod in added)
    steps.extend(_summary(me, "SuccessfulDelete", "Deleted", removed))
    steps.extend(_summary(me, "SuccessfulCreate", "Created", [p.metadata.name for p in added]))
    kept = [p for p in alive if p.metadata.name not in deleted]
    status, requeue = _status(deploy, kept, creates, pod_hash, now)
    updated = [p for p in kept if p.metadata.labels.get(LABEL_TEMPLATE_HASH) == pod_hash]
    return PodPlan(steps, status, requeue, updated, [p for p in kept if is_ready(p)])


def rolling_bounds(deploy: Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods: surge rounds up, unavailable down; never both 0."""
    want = max(deploy.spec.replicas, 0)
    rolling = deploy.spec.strategy.rolling_update
    surge = resolve(rolling.max_surge if rolling else 1, want, round_up=True)
    unavailable = resolve(rolling.max_unavailable if rolling else 0, want, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _status(deploy: Deployment, kept: Sequence[Pod], creates: int, pod_hash: str,
            now: datetime) -> tuple[DeploymentStatus, float | None]:
    want = max(deploy.spec.replicas, 0)
    ready = [p for p in kept if is_ready(p)]
    min_ready = timedelta(seconds=max(deploy.spec.min_ready_seconds, 0))
    available = 0
    requeue: float | None = None
    for pod in ready:
        since = _ready_since(pod)
        if not min_ready or since is None or since + min_ready <= now:
            available += 1
        else:
            wait = (since + min_ready - now).total_seconds()
            requeue = wait if requeue is None else min(requeue, wait)
    updated = sum(1 for p in kept if p.metadata.labels.get(LABEL_TEMPLATE_HASH) == pod_hash) + creates
    updated_ready = sum(1 for p in ready if p.metadata.labels.get(LABEL_TEMPLATE_HASH) == pod_hash)
    rolling = deploy.spec.strategy.rolling_update
    unavailable = resolve(rolling.max_unavailable if rolling else 0, want, round_up=False)
    is_available = available >= want - unavailable
    cond = Condition(type="Available", status="True" if is_available else "False",
                     reason="MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                     message=f"{available} of {want} replicas available", last_transition_time=rfc3339(now))
    conditions = set_condition(deploy.status.conditions, cond)
    status = msgspec.structs.replace(
        deploy.status, observed_generation=deploy.metadata.generation, replicas=len(kept) + creates,
        updated_replicas=updated, ready_replicas=len(ready), available_replicas=available,
        unavailable_replicas=max(want - available, 0), updated_ready_replicas=updated_ready, conditions=conditions)
    return status, requeue
