"""The Job controller: runs a template's pods until ``completions`` of them succeed.

``reconcile_job(job, pods, now)`` is pure: it keeps ``min(parallelism, completions - succeeded)``
pods active, recreates failed ones after an exponential back-off (10 s, 20 s, ... capped at 6 min),
and finishes the Job with condition Complete, or Failed (BackoffLimitExceeded, DeadlineExceeded,
InvalidTemplate), deleting what is still active. Failures count failed pods plus container
restarts of OnFailure pods. Counts never go down (a pod deleted by hand keeps its tally).
``ttlSecondsAfterFinished`` deletes the finished Job; its pods follow through garbage collection.
Finished pods are kept for their logs. It never reads the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import msgspec

from shoal.controllers.actions import (
    Action,
    Actions,
    Create,
    Delete,
    EmitEvent,
    EventType,
    Key,
    Result,
    Update,
    delete_of,
    parse_time,
    ref_of,
    rfc3339,
    sooner,
)
from shoal.controllers.cache import Cache
from shoal.controllers.daemonset import removal_order
from shoal.controllers.rollout_pods import NameSuffix, is_ready, random_suffix
from shoal.controllers.runner import Enqueue, KeyMapper, controller_owner_key, no_trigger, own_key
from shoal.model import Condition, ObjectMeta, OwnerReference, Pod, PodPhase, condition, set_condition
from shoal.model.job import LABEL_JOB_NAME, Job, JobConditionType, JobStatus
from shoal.model.pod import RestartPolicy

BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 360.0
_MAX_NAME = 253


def finished_condition(job: Job) -> Condition | None:
    """The Job's Complete or Failed condition when it is True (the Job is done), else None."""
    for kind in (JobConditionType.COMPLETE, JobConditionType.FAILED):
        cond = condition(job.status.conditions, kind)
        if cond is not None and cond.status == "True":
            return cond
    return None


def job_pod(job: Job, suffix: str) -> Pod:
    template = job.spec.template
    prefix = job.metadata.name[: _MAX_NAME - len(suffix) - 1]
    owner = OwnerReference(api_version=job.api_version, kind="Job", name=job.metadata.name, uid=job.metadata.uid,
                           controller=True, block_owner_deletion=True)
    metadata = ObjectMeta(name=f"{prefix}-{suffix}", namespace=job.metadata.namespace,
                          labels={**template.metadata.labels, LABEL_JOB_NAME: job.metadata.name},
                          annotations=dict(template.metadata.annotations), owner_references=[owner])
    return Pod(metadata=metadata, spec=template.spec)


def _failures(pods: Sequence[Pod]) -> int:
    failed = sum(1 for p in pods if p.status.phase == PodPhase.FAILED)
    restarts = sum(c.restart_count for p in pods if p.spec.restart_policy == RestartPolicy.ON_FAILURE
                   for c in p.status.container_statuses)
    return failed + restarts


def _failed_at(pod: Pod) -> datetime | None:
    ends = [t for t in (parse_time(c.finished_at) for c in pod.status.container_statuses) if t is not None]
    return max(ends) if ends else parse_time(pod.status.start_time) or parse_time(pod.metadata.creation_timestamp)


def _last_failure(pods: Sequence[Pod]) -> datetime | None:
    known = [t for t in (_failed_at(p) for p in pods if p.status.phase == PodPhase.FAILED) if t is not None]
    return max(known) if known else None


def _finish(job: Job, status: JobStatus, kind: JobConditionType, reason: str, message: str, now: datetime,
            active: Sequence[Pod]) -> Actions:
    stamp = rfc3339(now)
    cond = Condition(type=kind, status="True", reason=reason, message=message, last_transition_time=stamp)
    status = msgspec.structs.replace(status, active=0, ready=0, completion_time=stamp,
                                     conditions=set_condition(status.conditions, cond))
    event_type = EventType.NORMAL if kind == JobConditionType.COMPLETE else EventType.WARNING
    steps: list[Action] = [delete_of(p) for p in active]
    steps += [Update(msgspec.structs.replace(job, status=status)), EmitEvent(ref_of(job), reason, message, event_type)]
    ttl = job.spec.ttl_seconds_after_finished
    return Actions(tuple(steps), Result(None if ttl is None else float(max(ttl, 0))))


def _after_finish(job: Job, done: Condition, active: Sequence[Pod], now: datetime) -> Actions:
    steps: list[Action] = [delete_of(p) for p in active]
    ttl = job.spec.ttl_seconds_after_finished
    finished = parse_time(job.status.completion_time) or parse_time(done.last_transition_time) or now
    if ttl is None:
        return Actions(tuple(steps))
    expires = finished + timedelta(seconds=max(ttl, 0))
    if expires <= now:
        m = job.metadata
        return Actions((*steps, Delete("Job", m.namespace, m.name, m.resource_version),
                        EmitEvent(ref_of(job), "Deleted", f"deleted {ttl}s after it finished "
                                  "(ttlSecondsAfterFinished)")))
    return Actions(tuple(steps), Result((expires - now).total_seconds()))


def reconcile_job(job: Job, pods: Sequence[Pod], now: datetime, name_suffix: NameSuffix = random_suffix,
                  backoff_base: float = BACKOFF_BASE_SECONDS) -> Actions:
    """One step of the Job toward ``completions`` succeeded pods."""
    if job.metadata.deletion_timestamp:
        return Actions()
    live = [p for p in pods if not p.metadata.deletion_timestamp]
    active = [p for p in live if p.status.phase not in (PodPhase.SUCCEEDED, PodPhase.FAILED)]
    done = finished_condition(job)
    if done is not None:
        return _after_finish(job, done, active, now)
    spec = job.spec
    completions, parallelism = max(spec.completions, 0), max(spec.parallelism, 0)
    succeeded = max(job.status.succeeded, sum(1 for p in live if p.status.phase == PodPhase.SUCCEEDED))
    failed = max(job.status.failed, _failures(live))
    start = parse_time(job.status.start_time) or now
    status = msgspec.structs.replace(job.status, start_time=rfc3339(start), succeeded=succeeded, failed=failed,
                                     active=len(active), ready=sum(1 for p in active if is_ready(p)))
    if spec.template.spec.restart_policy == RestartPolicy.ALWAYS:
        return _finish(job, status, JobConditionType.FAILED, "InvalidTemplate", 'spec.template.spec.restartPolicy '
                       'is "Always", so no pod could ever finish; use "Never" or "OnFailure"', now, active)
    if failed > max(spec.backoff_limit, 0):
        return _finish(job, status, JobConditionType.FAILED, "BackoffLimitExceeded",
                       f"{failed} failure(s), more than backoffLimit {spec.backoff_limit}", now, active)
    requeue: float | None = None
    if spec.active_deadline_seconds is not None:
        deadline = start + timedelta(seconds=max(spec.active_deadline_seconds, 0))
        if deadline <= now:
            return _finish(job, status, JobConditionType.FAILED, "DeadlineExceeded",
                           f"active longer than activeDeadlineSeconds ({spec.active_deadline_seconds}s)", now, active)
        requeue = (deadline - now).total_seconds()
    if succeeded >= completions:
        return _finish(job, status, JobConditionType.COMPLETE, "Completed",
                       f"{succeeded} of {completions} completions succeeded", now, active)
    want = min(parallelism, completions - succeeded)
    steps: list[Action] = []
    if len(active) > want:
        steps += [delete_of(p) for p in removal_order(active)[: len(active) - want]]
    elif len(active) < want:
        last = _last_failure(live) if failed else None
        wait = 0.0
        if last is not None:
            ready_at = last + timedelta(seconds=min(backoff_base * 2 ** (failed - 1), BACKOFF_MAX_SECONDS))
            wait = max((ready_at - now).total_seconds(), 0.0)
        if wait > 0:
            requeue = sooner(requeue, wait)
        else:
            added = [job_pod(job, name_suffix()) for _ in range(want - len(active))]
            steps += [Create(p) for p in added]
            steps += [EmitEvent(ref_of(job), "SuccessfulCreate", f"Created pod {p.metadata.name}") for p in added[:3]]
            status = msgspec.structs.replace(status, active=len(active) + len(added))
    if status != job.status:
        steps.append(Update(msgspec.structs.replace(job, status=status)))
    return Actions(tuple(steps), Result(requeue))


class JobReconciler:
    """Adapts ``reconcile_job`` to the runner: key → (Job, its pods) from the cache."""

    name = "job"
    kind = "Job"

    def __init__(self, name_suffix: NameSuffix = random_suffix, backoff_base: float = BACKOFF_BASE_SECONDS) -> None:
        self._suffix = name_suffix
        self._backoff_base = backoff_base

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"Job": own_key, "Pod": controller_owner_key("Job")}

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        job = cache.get(key)
        if not isinstance(job, Job):
            return Actions()
        pods = [p for p in cache.owned_by(job.metadata.uid, "Pod") if isinstance(p, Pod)]
        return reconcile_job(job, pods, now, self._suffix, self._backoff_base)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)
