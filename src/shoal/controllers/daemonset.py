"""The DaemonSet controller: one pod of the template on every node the template selects.

``node_wants_pod``/``node_keeps_pod`` decide per node (nodeSelector, required node affinity,
tolerations against taints; offline and cordoned nodes are tolerated, so their pod stays).
``reconcile_daemonset(ds, nodes, pods, now)`` is pure: it creates the missing pods bound straight
to their node (``spec.nodeName``; the scheduler's ledger counts such pods when it next commits to
that node, see ``server/ledger.prune``), deletes pods on nodes that no longer match or no longer
exist, and rolls a new template across nodes, deleting at most ``maxUnavailable`` ready old pods
beyond those already unavailable. It never reads the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import msgspec

from shoal.controllers.actions import Action, Actions, Create, EmitEvent, Key, Update, delete_of, ref_of, rfc3339
from shoal.controllers.cache import Cache
from shoal.controllers.rollout_pods import NameSuffix, is_ready, random_suffix, resolve, template_hash
from shoal.controllers.runner import Enqueue, KeyMapper, controller_owner_key, no_trigger, own_key
from shoal.model import (
    Condition,
    Node,
    Object,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodPhase,
    Toleration,
    set_condition,
)
from shoal.model.daemonset import DaemonSet, DaemonSetStatus, DaemonSetStrategyType
from shoal.model.meta import LabelSelectorRequirement
from shoal.model.node import TAINT_OFFLINE, TAINT_UNSCHEDULABLE, Taint
from shoal.model.pod import PodSpec
from shoal.model.workloads import LABEL_TEMPLATE_HASH

# Daemon pods run on cordoned and offline nodes, as Kubernetes' DaemonSet pods do.
AUTO_TOLERATIONS = (Toleration(key=TAINT_OFFLINE, operator="Exists", effect="NoExecute"),
                    Toleration(key=TAINT_UNSCHEDULABLE, operator="Exists", effect="NoSchedule"))
_MAX_NAME = 253

def removal_order(pods: Iterable[Pod]) -> list[Pod]:
    """Pods in the order to remove them: unscheduled first, then not ready, then newest first."""
    by_age = sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name), reverse=True)
    return sorted(by_age, key=lambda p: (bool(p.spec.node_name), is_ready(p)))


def _tolerates(tolerations: Sequence[Toleration], taint: Taint) -> bool:
    for tol in (*tolerations, *AUTO_TOLERATIONS):
        if tol.effect and tol.effect != taint.effect:
            continue
        if tol.operator == "Exists" and tol.key in ("", taint.key):
            return True
        if tol.operator in ("", "Equal") and tol.key == taint.key and tol.value == taint.value:
            return True
    return False


def _expression_matches(expr: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    value = labels.get(expr.key)
    if expr.operator == "In":
        return value is not None and value in expr.values
    if expr.operator == "NotIn":
        return value is None or value not in expr.values
    if expr.operator == "Exists":
        return value is not None
    if expr.operator == "DoesNotExist":
        return value is None
    if expr.operator in ("Gt", "Lt") and value is not None and value.lstrip("-").isdigit() and expr.values:
        bound = expr.values[0]
        if bound.lstrip("-").isdigit():
            return int(value) > int(bound) if expr.operator == "Gt" else int(value) < int(bound)
    return False


def selects_node(spec: PodSpec, node: Node) -> bool:
    """The template's nodeSelector and required node affinity both accept ``node``'s labels."""
    labels = node.metadata.labels
    if any(labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    affinity = spec.affinity.node_affinity if spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is None or not required.node_selector_terms:
        return True
    return any(all(_expression_matches(e, labels) for e in term.match_expressions)
               for term in required.node_selector_terms)


def node_wants_pod(spec: PodSpec, node: Node) -> bool:
    """A new daemon pod belongs on ``node``: it is selected and every NoSchedule/NoExecute taint is tolerated."""
    if node.metadata.deletion_timestamp or not selects_node(spec, node):
        return False
    return all(_tolerates(spec.tolerations, t) for t in node.spec.taints if t.effect in ("NoSchedule", "NoExecute"))


def node_keeps_pod(spec: PodSpec, node: Node) -> bool:
    """An existing daemon pod stays on ``node``: still selected, and no untolerated NoExecute taint."""
    if node.metadata.deletion_timestamp or not selects_node(spec, node):
        return False
    return all(_tolerates(spec.tolerations, t) for t in node.spec.taints if t.effect == "NoExecute")


def daemon_pod(ds: DaemonSet, node: str, pod_hash: str, suffix: str) -> Pod:
    template = ds.spec.template
    prefix = f"{ds.metadata.name}-{pod_hash}"[: _MAX_NAME - len(suffix) - 1]
    owner = OwnerReference(api_version=ds.api_version, kind="DaemonSet", name=ds.metadata.name, uid=ds.metadata.uid,
                           controller=True, block_owner_deletion=True)
    tolerations = [*template.spec.tolerations, *(t for t in AUTO_TOLERATIONS if t not in template.spec.tolerations)]
    metadata = ObjectMeta(name=f"{prefix}-{suffix}", namespace=ds.metadata.namespace,
                          labels={**template.metadata.labels, LABEL_TEMPLATE_HASH: pod_hash},
                          annotations=dict(template.metadata.annotations), owner_references=[owner])
    return Pod(metadata=metadata, spec=msgspec.structs.replace(template.spec, node_name=node, tolerations=tolerations))


def _keep_order(pod: Pod, pod_hash: str) -> tuple[bool, bool, str]:
    """Sort key: the pod to keep on a node sorts first (current template, ready, oldest)."""
    return (pod.metadata.labels.get(LABEL_TEMPLATE_HASH) != pod_hash, not is_ready(pod),
            pod.metadata.creation_timestamp)


def reconcile_daemonset(ds: DaemonSet, nodes: Sequence[Node], pods: Sequence[Pod], now: datetime,
                        name_suffix: NameSuffix = random_suffix) -> Actions:
    """One step of the DaemonSet toward one ready pod of its current template per selected node."""
    if ds.metadata.deletion_timestamp:
        return Actions()
    template = ds.spec.template.spec
    pod_hash = template_hash(ds.spec.template)
    me = ref_of(ds)
    steps: list[Action] = []
    events: list[EmitEvent] = []
    by_node: dict[str, list[Pod]] = {}
    node_names = {n.metadata.name for n in nodes}

    def delete(pod: Pod, why: str) -> None:
        steps.append(delete_of(pod))
        events.append(EmitEvent(me, "SuccessfulDelete", f"Deleted pod {pod.metadata.name} ({why})"))

    for pod in pods:
        if pod.metadata.deletion_timestamp:
            continue
        if pod.status.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED):
            delete(pod, f"{pod.status.phase}; replaced")
        elif pod.spec.node_name not in node_names:
            delete(pod, f'node "{pod.spec.node_name}" is gone' if pod.spec.node_name else "not bound to a node")
        else:
            by_node.setdefault(pod.spec.node_name, []).append(pod)
    desired: list[str] = []
    kept: dict[str, Pod] = {}
    misscheduled = 0
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        name = node.metadata.name
        here = sorted(by_node.get(name, []), key=lambda p: _keep_order(p, pod_hash))
        if here and not node_keeps_pod(template, node):
            misscheduled += 1
            for pod in here:
                delete(pod, f'node "{name}" no longer matches')
            continue
        if not here and not node_wants_pod(template, node):
            continue
        desired.append(name)
        if here:
            kept[name] = here[0]
            for extra in here[1:]:
                delete(extra, f'more than one on node "{name}"')
    creates: list[Pod] = [daemon_pod(ds, name, pod_hash, name_suffix()) for name in desired if name not in kept]
    strategy = ds.spec.update_strategy
    old = [p for p in kept.values() if p.metadata.labels.get(LABEL_TEMPLATE_HASH) != pod_hash]
    if strategy.type == DaemonSetStrategyType.ROLLING_UPDATE and old:
        rolling = strategy.rolling_update
        allowed = resolve(rolling.max_unavailable if rolling else 1, len(desired), round_up=True) or 1
        unavailable = len(desired) - sum(1 for p in kept.values() if is_ready(p))
        for pod in old:
            if not is_ready(pod):
                delete(pod, "old template, not ready")
                kept.pop(pod.spec.node_name)
        for pod in sorted((p for p in old if is_ready(p)), key=lambda p: p.spec.node_name):
            if unavailable >= allowed:
                break
            delete(pod, "old template")
            kept.pop(pod.spec.node_name)
            unavailable += 1
    steps.extend(Create(pod) for pod in creates)
    events.extend(EmitEvent(me, "SuccessfulCreate", f"Created pod {p.metadata.name} on node {p.spec.node_name}")
                  for p in creates)
    status = _status(ds, desired, kept, misscheduled, pod_hash, now)
    if status != ds.status:
        steps.append(Update(msgspec.structs.replace(ds, status=status)))
    return Actions((*steps, *events))


def _status(ds: DaemonSet, desired: Sequence[str], kept: Mapping[str, Pod], misscheduled: int, pod_hash: str,
            now: datetime) -> DaemonSetStatus:
    ready = sum(1 for p in kept.values() if is_ready(p))
    updated = sum(1 for p in kept.values() if p.metadata.labels.get(LABEL_TEMPLATE_HASH) == pod_hash)
    done = ready == len(desired) and updated == len(desired)
    cond = Condition(type="Available", status="True" if done else "False",
                     reason="AllNodesReady" if done else "NodesNotReady",
                     message=f"{ready} of {len(desired)} nodes ready, {updated} updated",
                     last_transition_time=rfc3339(now))
    return msgspec.structs.replace(
        ds.status, observed_generation=ds.metadata.generation, desired_number_scheduled=len(desired),
        current_number_scheduled=len(kept), number_misscheduled=misscheduled, number_ready=ready,
        number_available=ready, number_unavailable=len(desired) - ready, updated_number_scheduled=updated,
        conditions=set_condition(ds.status.conditions, cond))


class DaemonSetReconciler:
    """Adapts ``reconcile_daemonset`` to the runner: key → (DaemonSet, nodes, its pods) from the cache."""

    name = "daemonset"
    kind = "DaemonSet"

    def __init__(self, name_suffix: NameSuffix = random_suffix) -> None:
        self._suffix = name_suffix

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"DaemonSet": own_key, "Pod": controller_owner_key("DaemonSet"), "Node": self._every_daemonset}

    @staticmethod
    def _every_daemonset(obj: Object, cache: Cache) -> list[Key]:
        return cache.keys("DaemonSet")

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        ds = cache.get(key)
        if not isinstance(ds, DaemonSet):
            return Actions()
        nodes = [n for n in cache.objects("Node") if isinstance(n, Node)]
        pods = [p for p in cache.owned_by(ds.metadata.uid, "Pod") if isinstance(p, Pod)]
        return reconcile_daemonset(ds, nodes, pods, now, self._suffix)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)
