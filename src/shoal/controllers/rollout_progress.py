"""Rollout progress: the Progressing condition, the progress deadline and automatic rollback.

``progressing`` is pure: the previous Progressing condition, the previous and new Deployment
status, whether a new rollout just began and the clock decide the new condition, as Kubernetes'
deployment controller does — progress (more updated or ready pods, fewer old pods) renews
``lastHeartbeatTime`` (Kubernetes' ``lastUpdateTime``); no progress for
``spec.progressDeadlineSeconds`` turns it False with reason ``ProgressDeadlineExceeded``.
``stall_reason`` explains in one line why the new pods are not ready. This module never reads
the store and never decides which pods to create or delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shoal.controllers.actions import parse_time, rfc3339
from shoal.model import Condition, Pod, PodPhase, condition
from shoal.model.workloads import ConditionType, DeploymentStatus, RolloutReason

REASONS_SHOWN = 3


@dataclass(frozen=True)
class Progress:
    condition: Condition
    requeue_after: float | None  # when the deadline would pass, if nothing changes before
    newly_exceeded: bool  # the deadline passed in this reconcile


def made_progress(old: DeploymentStatus, new: DeploymentStatus) -> bool:
    """Kubernetes' ``DeploymentProgressing``: more updated/ready/available pods, or fewer old ones."""
    old_pods = old.replicas - old.updated_replicas
    new_pods = new.replicas - new.updated_replicas
    return (new.updated_replicas > old.updated_replicas or new.updated_ready_replicas > old.updated_ready_replicas
            or new_pods < old_pods or new.available_replicas > old.available_replicas)


def is_complete(status: DeploymentStatus, want: int) -> bool:
    """Every pod runs the current template and is available, and no old pod is left."""
    return (status.updated_replicas == want and status.replicas == want and status.available_replicas >= want
            and status.updated_ready_replicas >= want)


def _condition(status: str, reason: RolloutReason, message: str, now: datetime) -> Condition:
    stamp = rfc3339(now)
    return Condition(type=ConditionType.PROGRESSING, status=status, reason=reason, message=message,
                     last_transition_time=stamp, last_heartbeat_time=stamp)


def progressing(previous: Condition | None, old: DeploymentStatus, new: DeploymentStatus, *, revision: int,
                want: int, deadline_seconds: int, new_rollout: bool, paused: bool, now: datetime,
                holding: str = "") -> Progress:
    """The Progressing condition after one reconcile (``new`` is the status it is about to write);
    ``holding`` says why a canary pause step waits (the deadline does not run meanwhile)."""
    if paused:
        if previous is not None and previous.reason == RolloutReason.PAUSED:
            return Progress(previous, None, False)
        return Progress(_condition("Unknown", RolloutReason.PAUSED, "rollout paused; resume with "
                                   "`shoal rollout resume`", now), None, False)
    if is_complete(new, want):
        if previous is not None and previous.reason == RolloutReason.AVAILABLE and not new_rollout:
            return Progress(previous, None, False)
        return Progress(_condition("True", RolloutReason.AVAILABLE, f"revision {revision} is available: "
                                   f"{want} of {want} pods updated and ready", now), None, False)
    deadline = timedelta(seconds=max(deadline_seconds, 1))
    if holding:
        if previous is not None and previous.reason == RolloutReason.CANARY_PAUSE and previous.message == holding:
            return Progress(previous, None, False)
        return Progress(_condition("True", RolloutReason.CANARY_PAUSE, holding, now), None, False)
    if new_rollout or previous is None or previous.reason in (RolloutReason.PAUSED, RolloutReason.AVAILABLE,
                                                              RolloutReason.CANARY_PAUSE):
        reason = RolloutReason.NEW_REVISION if new_rollout or previous is None else RolloutReason.RESUMED
        return Progress(_condition("True", reason, f"rolling out revision {revision}", now),
                        deadline.total_seconds(), False)
    if previous.reason == RolloutReason.DEADLINE:
        return Progress(previous, None, False)
    if made_progress(old, new):
        return Progress(_condition("True", RolloutReason.UPDATED, f"revision {revision}: {new.updated_replicas} "
                                   f"updated, {new.updated_ready_replicas} ready of {want}", now),
                        deadline.total_seconds(), False)
    since = parse_time(previous.last_heartbeat_time) or parse_time(previous.last_transition_time) or now
    if since + deadline <= now:
        message = f"revision {revision} made no progress for {int(deadline.total_seconds())}s " \
                  "(spec.progressDeadlineSeconds)"
        return Progress(_condition("False", RolloutReason.DEADLINE, message, now), None, True)
    return Progress(previous, (since + deadline - now).total_seconds(), False)


def stall_reason(new_pods: Sequence[Pod], ready: Sequence[Pod]) -> str:
    """``2 of 2 new pods not ready (web-1a2b-x: CrashLoopBackOff, ...)``."""
    ready_names = {p.metadata.name for p in ready}
    stuck = [p for p in new_pods if p.metadata.name not in ready_names]
    if not new_pods:
        return "no new pod was created"
    if not stuck:
        return "new pods are ready but not yet available (spec.minReadySeconds)"
    details = [f"{p.metadata.name}: {_why(p)}" for p in stuck[:REASONS_SHOWN]]
    more = ", ..." if len(stuck) > REASONS_SHOWN else ""
    return f"{len(stuck)} of {len(new_pods)} new pods not ready ({', '.join(details)}{more})"


def _why(pod: Pod) -> str:
    for status in pod.status.container_statuses:
        if not status.ready and (status.reason or status.message):
            return status.reason or status.message
    if pod.status.reason:
        return pod.status.reason
    if not pod.spec.node_name:
        return "not scheduled"
    if pod.status.phase != PodPhase.RUNNING:
        return str(pod.status.phase)
    ready = condition(pod.status.conditions, "Ready")
    return (ready.reason or ready.message or "not ready") if ready is not None else "not ready"
