"""The CronJob controller: stamps a Job from ``jobTemplate`` each time the schedule fires.

``reconcile_cronjob(cron, jobs, now)`` is pure: it finds the latest firing time since the last
one it ran (looking back at most a day), honours ``startingDeadlineSeconds``, ``suspend`` and
``concurrencyPolicy`` (Allow, Forbid: skip while a Job is active, Replace: delete the active ones
first), names the Job ``NAME-<scheduled time in unix minutes>`` so a repeated reconcile never
creates it twice, trims finished Jobs to the history limits and asks to be woken at the next
firing time. A schedule that does not parse gives a ScheduleValid=False condition and a Warning
event naming the field. ``workload_controllers`` builds the DaemonSet, Job and CronJob
controllers and the garbage collection of their dependents. It never reads the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

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
    delete_of,
    parse_time,
    ref_of,
    rfc3339,
)
from shoal.controllers.cache import Cache, ObjectStore
from shoal.controllers.daemonset import DaemonSetReconciler
from shoal.controllers.gc import GarbageCollector
from shoal.controllers.job import JobReconciler, finished_condition
from shoal.controllers.runner import Controller, Enqueue, KeyMapper, controller_owner_key, no_trigger, own_key
from shoal.model import Condition, ObjectMeta, OwnerReference, set_condition
from shoal.model.job import (
    ANNOTATION_SCHEDULED_AT,
    ConcurrencyPolicy,
    CronError,
    CronJob,
    CronSchedule,
    Job,
    JobConditionType,
)

LOOKBACK = timedelta(days=1)  # missed firing times older than this are not caught up
_MAX_STEPS = 24 * 60 + 1


def job_name(cron: CronJob, scheduled: datetime) -> str:
    return f"{cron.metadata.name}-{int(scheduled.timestamp()) // 60}"


def latest_firing(schedule: CronSchedule, since: datetime, now: datetime) -> datetime | None:
    """The last time in (since, now] the schedule fires, looking back at most ``LOOKBACK``."""
    t = max(since, now - LOOKBACK)
    latest: datetime | None = None
    for _ in range(_MAX_STEPS):
        following = schedule.next_after(t)
        if following is None or following > now:
            break
        latest = t = following
    return latest


def cron_job(cron: CronJob, scheduled: datetime) -> Job:
    template = cron.spec.job_template
    owner = OwnerReference(api_version=cron.api_version, kind="CronJob", name=cron.metadata.name,
                           uid=cron.metadata.uid, controller=True, block_owner_deletion=True)
    metadata = ObjectMeta(name=job_name(cron, scheduled), namespace=cron.metadata.namespace,
                          labels=dict(template.metadata.labels),
                          annotations={**template.metadata.annotations, ANNOTATION_SCHEDULED_AT: rfc3339(scheduled)},
                          owner_references=[owner])
    return Job(metadata=metadata, spec=template.spec)


def _when(job: Job) -> str:
    return job.metadata.annotations.get(ANNOTATION_SCHEDULED_AT) or job.metadata.creation_timestamp


def _invalid(cron: CronJob, error: CronError, now: datetime) -> Actions:
    message = f"spec.schedule: {error}"
    cond = Condition(type="ScheduleValid", status="False", reason="InvalidSchedule", message=message,
                     last_transition_time=rfc3339(now))
    status = msgspec.structs.replace(cron.status, conditions=set_condition(cron.status.conditions, cond))
    steps: list[Action] = [EmitEvent(ref_of(cron), "InvalidSchedule", message, EventType.WARNING)]
    if status != cron.status:
        steps.insert(0, Update(msgspec.structs.replace(cron, status=status)))
    return Actions(tuple(steps))


def reconcile_cronjob(cron: CronJob, jobs: Sequence[Job], now: datetime) -> Actions:
    """One step of the CronJob: run the Job due now (if any), trim history, wait for the next time."""
    if cron.metadata.deletion_timestamp:
        return Actions()
    try:
        schedule = CronSchedule.parse(cron.spec.schedule)
    except CronError as exc:
        return _invalid(cron, exc, now)
    me = ref_of(cron)
    spec = cron.spec
    live = sorted((j for j in jobs if not j.metadata.deletion_timestamp), key=_when)
    active = [j for j in live if finished_condition(j) is None]
    steps: list[Action] = []
    for kind, limit in ((JobConditionType.COMPLETE, spec.successful_jobs_history_limit),
                        (JobConditionType.FAILED, spec.failed_jobs_history_limit)):
        done = [j for j in live if (c := finished_condition(j)) is not None and c.type == kind]
        steps += [delete_of(j) for j in done[: max(len(done) - max(limit, 0), 0)]]
    successes = [j.status.completion_time for j in live if (c := finished_condition(j)) is not None
                 and c.type == JobConditionType.COMPLETE and j.status.completion_time]
    status = msgspec.structs.replace(
        cron.status, last_successful_time=max([cron.status.last_successful_time, *successes]),
        conditions=set_condition(cron.status.conditions, Condition(
            type="ScheduleValid", status="True", reason="ScheduleParsed", last_transition_time=rfc3339(now))))
    since = parse_time(cron.status.last_schedule_time) or parse_time(cron.metadata.creation_timestamp) or now
    due = None if spec.suspend else latest_firing(schedule, since, now)
    if due is not None:
        late = (now - due).total_seconds()
        if spec.starting_deadline_seconds is not None and late > spec.starting_deadline_seconds:
            steps.append(EmitEvent(me, "MissedSchedule", f"missed the run of {rfc3339(due)} by {late:.0f}s "
                                   f"(startingDeadlineSeconds {spec.starting_deadline_seconds})", EventType.WARNING))
            status = msgspec.structs.replace(status, last_schedule_time=rfc3339(due))
        elif spec.concurrency_policy == ConcurrencyPolicy.FORBID and active:
            steps.append(EmitEvent(me, "JobAlreadyActive", f"not starting the run of {rfc3339(due)}: "
                                   f"{active[-1].metadata.name} is still active (concurrencyPolicy Forbid)"))
        else:
            if spec.concurrency_policy == ConcurrencyPolicy.REPLACE:
                for old in active:
                    steps += [delete_of(old), EmitEvent(me, "SuccessfulDelete", f"Deleted job {old.metadata.name} "
                                                        "(concurrencyPolicy Replace)")]
                active = []
            new = cron_job(cron, due)
            if all(j.metadata.name != new.metadata.name for j in jobs):
                steps += [Create(new), EmitEvent(me, "SuccessfulCreate", f"Created job {new.metadata.name}")]
                active.append(new)
            status = msgspec.structs.replace(status, last_schedule_time=rfc3339(due))
    status = msgspec.structs.replace(status, active=[ref_of(j) for j in active])
    if status != cron.status:
        steps.append(Update(msgspec.structs.replace(cron, status=status)))
    following = None if spec.suspend else schedule.next_after(now)
    requeue = None if following is None else max((following - now).total_seconds(), 0.0) + 0.05
    return Actions(tuple(steps), Result(requeue))


class CronJobReconciler:
    """Adapts ``reconcile_cronjob`` to the runner: key → (CronJob, its Jobs) from the cache."""

    name = "cronjob"
    kind = "CronJob"

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"CronJob": own_key, "Job": controller_owner_key("CronJob")}

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        cron = cache.get(key)
        if not isinstance(cron, CronJob):
            return Actions()
        jobs = [j for j in cache.owned_by(cron.metadata.uid, "Job") if isinstance(j, Job)]
        return reconcile_cronjob(cron, jobs, now)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)


def workload_controllers(store: ObjectStore, clock: Callable[[], datetime], *, workers: int = 2) -> list[Controller]:
    """The DaemonSet, Job and CronJob controllers, and garbage collection of their pods and Jobs."""
    return [
        Controller(DaemonSetReconciler(), store, clock, workers=workers),
        Controller(JobReconciler(), store, clock, workers=workers),
        Controller(CronJobReconciler(), store, clock, workers=1),  # one worker: one Job per firing time
        Controller(GarbageCollector(("DaemonSet", "Job"), ("Pod",)), store, clock, workers=1),
        Controller(GarbageCollector(("CronJob",), ("Job",)), store, clock, workers=1),
    ]
