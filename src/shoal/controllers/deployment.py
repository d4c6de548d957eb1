"""The Deployment controller: rollouts of a pod template, with history, deadline and rollback.

``reconcile_rollout(deploy, pods, revisions, now)`` is pure. Each call: records ``spec.template``
as a ``DeploymentRevision`` (``rollout_history``), plans the pod creates/deletes of a rolling
update or a recreate (``rollout_pods``), holding at canary steps (``rollout_canary``), and updates
the Progressing condition (``rollout_progress``). When the new pods make no progress within
``spec.progressDeadlineSeconds`` the condition turns False (``ProgressDeadlineExceeded``), and
with ``spec.autoRollback`` the previous revision's template is written back into
``spec.template`` — what ``shoal rollout undo`` does — with a Warning event saying why and a
``RolledBack`` condition that stays until the next rollout the user starts. ``spec.paused``
holds the rollout: new templates are not rolled out, pods of the recorded revision are kept.
``reconcile_deployment`` is the pod step alone (no history). Nothing here reads the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import msgspec

from shoal.controllers.actions import (
    Action,
    Actions,
    Create,
    EmitEvent,
    EventType,
    Key,
    Result,
    Update,
    key_of,
    ref_of,
    sooner,
)
from shoal.controllers.cache import Cache
from shoal.controllers.rollout_canary import plan_canary
from shoal.controllers.rollout_history import HistoryPlan, hash_of, orphaned_revisions, plan_history
from shoal.controllers.rollout_pods import (
    NameSuffix,
    is_ready,
    plan_pods,
    random_suffix,
    resolve,
    rolling_bounds,
    scale_down_order,
    template_hash,
)
from shoal.controllers.rollout_progress import progressing, stall_reason
from shoal.controllers.runner import Enqueue, KeyMapper, controller_owner_key, no_trigger, own_key
from shoal.model import Condition, Deployment, DeploymentRevision, ObjectReference, Pod, condition, set_condition
from shoal.model.workloads import (
    ANNOTATION_REVISION,
    LABEL_TEMPLATE_HASH,
    ConditionType,
    RolloutReason,
    StrategyType,
)

ANNOTATION_ROLLED_BACK_TO = "shoal.io/rolled-back-to"  # template hash an automatic rollback restored

__all__ = [
    "ANNOTATION_ROLLED_BACK_TO",
    "DeploymentReconciler",
    "NameSuffix",
    "is_ready",
    "random_suffix",
    "reconcile_deployment",
    "reconcile_rollout",
    "resolve",
    "rolling_bounds",
    "scale_down_order",
    "template_hash",
]


def reconcile_deployment(deploy: Deployment, pods: Sequence[Pod], now: datetime,
                         name_suffix: NameSuffix = random_suffix) -> Actions:
    """One step of the Deployment's pods toward ``spec.replicas`` of its current template (no history)."""
    if deploy.metadata.deletion_timestamp:
        return Actions()
    plan = plan_pods(deploy, pods, now, name_suffix)
    steps = list(plan.steps)
    if plan.status != deploy.status:
        steps.append(Update(msgspec.structs.replace(deploy, status=plan.status)))
    return Actions(tuple(steps), Result(plan.requeue_after))


def _held(deploy: Deployment, revisions: Sequence[DeploymentRevision]) -> Deployment:
    """While paused: the Deployment as of its recorded revision (a new template waits for resume)."""
    recorded = deploy.metadata.annotations.get(ANNOTATION_REVISION, "")
    revision = next((r for r in revisions if str(r.revision) == recorded), None)
    if revision is None:
        return deploy
    return msgspec.structs.replace(deploy, spec=msgspec.structs.replace(deploy.spec, template=revision.template))


def reconcile_rollout(deploy: Deployment, pods: Sequence[Pod], revisions: Sequence[DeploymentRevision],
                      now: datetime, name_suffix: NameSuffix = random_suffix) -> Actions:
    """One step of the Deployment's rollout: history, pods, progress, and rollback past the deadline."""
    if deploy.metadata.deletion_timestamp:
        return Actions()
    spec, annotations = deploy.spec, deploy.metadata.annotations
    want = max(spec.replicas, 0)
    recorded = annotations.get(ANNOTATION_REVISION, "")
    pod_hash = template_hash(spec.template)
    if spec.paused:
        target = _held(deploy, revisions)
        history = HistoryPlan(int(recorded) if recorded.isdigit() else 0, None)
    else:
        target = deploy
        live = {p.metadata.labels.get(LABEL_TEMPLATE_HASH, "") for p in pods if not p.metadata.deletion_timestamp}
        history = plan_history(deploy, revisions, pod_hash, live)
    new_rollout = not spec.paused and recorded != str(history.current)
    canary = None
    if not spec.paused and spec.strategy.type == StrategyType.ROLLING_UPDATE:
        updated_ready = sum(1 for p in pods if p.metadata.labels.get(LABEL_TEMPLATE_HASH) == pod_hash
                            and is_ready(p) and not p.metadata.deletion_timestamp)
        canary = plan_canary(deploy, updated_ready, new_rollout=new_rollout, first_rollout=not recorded, now=now)
    plan = plan_pods(target, pods, now, name_suffix, canary.max_updated if canary else None)
    if canary is not None:
        plan = dataclasses.replace(plan, status=msgspec.structs.replace(
            plan.status, canary_step=canary.step, canary_step_started=canary.started))
    previous = condition(deploy.status.conditions, ConditionType.PROGRESSING)
    progress = progressing(previous, deploy.status, plan.status, revision=history.current, want=want,
                           deadline_seconds=spec.progress_deadline_seconds, new_rollout=new_rollout,
                           paused=spec.paused, now=now, holding=canary.waiting if canary else "")
    me = ref_of(deploy)
    cond = progress.condition
    if progress.newly_exceeded:
        cond = msgspec.structs.replace(cond, message=f"{cond.message}: {stall_reason(plan.updated, plan.ready)}")
    rolled_back_to = annotations.get(ANNOTATION_ROLLED_BACK_TO, "")
    if (cond.reason == RolloutReason.DEADLINE and spec.auto_rollback and history.previous is not None
            and rolled_back_to != pod_hash):
        return _roll_back(deploy, history, cond, me)
    new_annotations = dict(annotations)
    conditions = set_condition(plan.status.conditions, cond)
    if history.current:
        new_annotations[ANNOTATION_REVISION] = str(history.current)
    if new_rollout and rolled_back_to and rolled_back_to != pod_hash:  # the user started a rollout of their own
        new_annotations.pop(ANNOTATION_ROLLED_BACK_TO, None)
        conditions = [c for c in conditions if c.type != ConditionType.ROLLED_BACK]
    steps: list[Action] = [*history.steps, *plan.steps]
    steps.extend(_transition_events(me, previous, cond, recorded, new_rollout, history.current))
    status = msgspec.structs.replace(plan.status, conditions=conditions)
    if status != deploy.status or new_annotations != annotations:
        metadata = msgspec.structs.replace(deploy.metadata, annotations=new_annotations)
        steps.append(Update(msgspec.structs.replace(deploy, metadata=metadata, status=status)))
    requeue = sooner(plan.requeue_after, progress.requeue_after)
    return Actions(tuple(steps), Result(sooner(requeue, canary.requeue_after if canary else None)))


def _transition_events(me: ObjectReference, previous: Condition | None, cond: Condition, recorded: str,
                       new_rollout: bool, revision: int) -> list[EmitEvent]:
    changed = previous is None or previous.reason != cond.reason
    if new_rollout and recorded:
        return [EmitEvent(me, "RolloutStarted", f"rolling out revision {revision} (was revision {recorded})")]
    if changed and cond.reason == RolloutReason.AVAILABLE:
        return [EmitEvent(me, "RolloutComplete", cond.message)]
    if changed and cond.reason == RolloutReason.DEADLINE:
        return [EmitEvent(me, RolloutReason.DEADLINE, cond.message, EventType.WARNING)]
    return []


def _roll_back(deploy: Deployment, history: HistoryPlan, cond: Condition, me: ObjectReference) -> Actions:
    target = history.previous
    assert target is not None
    message = f"{cond.message}; rolled back to revision {target.revision}"
    progressing_false = msgspec.structs.replace(cond, message=message)
    rolled = msgspec.structs.replace(cond, type=ConditionType.ROLLED_BACK, status="True", message=message)
    conditions = set_condition(set_condition(deploy.status.conditions, progressing_false), rolled)
    annotations = {**deploy.metadata.annotations, ANNOTATION_REVISION: str(history.current),
                   ANNOTATION_ROLLED_BACK_TO: hash_of(target)}
    restored = msgspec.structs.replace(
        deploy, metadata=msgspec.structs.replace(deploy.metadata, annotations=annotations),
        spec=msgspec.structs.replace(deploy.spec, template=target.template),
        status=msgspec.structs.replace(deploy.status, conditions=conditions))
    steps: list[Action] = [*history.steps, Update(restored),
                           EmitEvent(me, "RolledBack", message, EventType.WARNING)]
    return Actions(tuple(steps), Result())


class DeploymentReconciler:
    """Adapts ``reconcile_rollout`` to the runner: key → (Deployment, its pods, its revisions)."""

    name = "deployment"
    kind = "Deployment"

    def __init__(self, name_suffix: NameSuffix = random_suffix) -> None:
        self._suffix = name_suffix

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        owner = controller_owner_key("Deployment")
        return {"Deployment": own_key, "Pod": owner, "DeploymentRevision": owner}

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        deploy = cache.get(key)

        def alive(uid: str) -> bool:
            return isinstance(cache.by_uid(uid), Deployment)

        if not isinstance(deploy, Deployment):  # deleted: its revisions go with it
            revisions = [r for r in cache.objects("DeploymentRevision", key[1]) if isinstance(r, DeploymentRevision)]
            return Actions(tuple(orphaned_revisions(key[1], key[2], revisions, alive)))
        uid = deploy.metadata.uid
        pods = [p for p in cache.owned_by(uid, "Pod") if isinstance(p, Pod)]
        mine = [r for r in cache.owned_by(uid, "DeploymentRevision") if isinstance(r, DeploymentRevision)]
        actions = reconcile_rollout(deploy, pods, mine, now, self._suffix)
        stale: list[Action] = []  # a same-named Deployment deleted earlier left a revision in the way
        for step in actions.steps:
            if isinstance(step, Create) and isinstance(step.obj, DeploymentRevision):
                existing = cache.get(key_of(step.obj))
                if isinstance(existing, DeploymentRevision):
                    stale.extend(orphaned_revisions(key[1], key[2], [existing], alive))
        return Actions((*stale, *actions.steps), actions.result) if stale else actions

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)

