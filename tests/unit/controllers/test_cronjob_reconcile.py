"""The pure CronJob reconcile: Jobs on schedule, concurrency policies, history limits, bad schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shoal.controllers.actions import Actions, Create, Delete, EmitEvent, Result, Update
from shoal.controllers.cronjob import reconcile_cronjob
from shoal.model import Condition, Container, ObjectMeta, PodSpec, PodTemplateSpec, condition
from shoal.model.job import (
    ANNOTATION_SCHEDULED_AT,
    ConcurrencyPolicy,
    CronJob,
    CronJobSpec,
    CronJobStatus,
    Job,
    JobSpec,
    JobStatus,
    JobTemplateSpec,
    cronjob_errors,
)
from shoal.model.pod import RestartPolicy

NOW = datetime(2026, 11, 23, 8, 5, 10, tzinfo=UTC)


def cronjob(schedule: str = "*/5 * * * *", policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW, *,
            last: str = "2026-11-23T08:00:00Z", deadline: int | None = None, keep_ok: int = 3,
            keep_failed: int = 1, suspend: bool = False) -> CronJob:
    template = JobTemplateSpec(metadata=ObjectMeta(labels={"app": "backup"}), spec=JobSpec(
        template=PodTemplateSpec(spec=PodSpec(containers=[Container(name="c", image="backup:1")],
                                              restart_policy=RestartPolicy.NEVER))))
    return CronJob(metadata=ObjectMeta(name="backup", namespace="default", uid="cj-uid", resource_version="3",
                                       creation_timestamp="2026-11-23T07:00:00Z"),
                   spec=CronJobSpec(schedule=schedule, job_template=template, concurrency_policy=policy,
                                    starting_deadline_seconds=deadline, successful_jobs_history_limit=keep_ok,
                                    failed_jobs_history_limit=keep_failed, suspend=suspend),
                   status=CronJobStatus(last_schedule_time=last))


def owned_job(name: str, scheduled: str, finished: str = "") -> Job:
    conditions = [Condition(type=finished, status="True")] if finished else []
    return Job(metadata=ObjectMeta(name=name, namespace="default", uid=f"u-{name}", resource_version="8",
                                   annotations={ANNOTATION_SCHEDULED_AT: scheduled}),
               status=JobStatus(conditions=conditions, completion_time=scheduled if finished == "Complete" else ""))


def created(actions: Actions) -> list[Job]:
    return [s.obj for s in actions.steps if isinstance(s, Create) and isinstance(s.obj, Job)]


def deleted(actions: Actions) -> list[str]:
    return [s.name for s in actions.steps if isinstance(s, Delete)]


def status(actions: Actions) -> CronJobStatus:
    updates = [s.obj for s in actions.steps if isinstance(s, Update) and isinstance(s.obj, CronJob)]
    assert len(updates) == 1
    return updates[0].status


def test_creates_the_due_job_named_after_its_minute() -> None:
    actions = reconcile_cronjob(cronjob(), [], NOW)
    [job] = created(actions)
    minutes = int(datetime(2026, 11, 23, 8, 5, tzinfo=UTC).timestamp()) // 60
    assert job.metadata.name == f"backup-{minutes}"
    assert job.metadata.owner_references[0].kind == "CronJob" and job.metadata.labels == {"app": "backup"}
    assert job.spec.template.spec.containers[0].image == "backup:1"
    assert status(actions).last_schedule_time == "2026-11-23T08:05:00Z"
    assert [r.name for r in status(actions).active] == [job.metadata.name]
    assert actions.result == Result(4 * 60 + 50 + 0.05)  # woken at 08:10


def test_nothing_due_waits_for_the_next_time() -> None:
    actions = reconcile_cronjob(cronjob(last="2026-11-23T08:05:00Z"), [], NOW)
    assert created(actions) == [] and actions.result.requeue_after is not None


def test_reconciling_again_does_not_create_the_job_twice() -> None:
    first = reconcile_cronjob(cronjob(), [], NOW)
    again = reconcile_cronjob(cronjob(), created(first), NOW)  # status write lost, Job already there
    assert created(again) == []


def test_forbid_skips_while_a_job_is_active() -> None:
    running = owned_job("backup-1", "2026-11-23T08:00:00Z")
    actions = reconcile_cronjob(cronjob(policy=ConcurrencyPolicy.FORBID), [running], NOW)
    assert created(actions) == [] and deleted(actions) == []
    assert any(isinstance(s, EmitEvent) and s.reason == "JobAlreadyActive" for s in actions.steps)
    done = owned_job("backup-1", "2026-11-23T08:00:00Z", finished="Complete")
    assert len(created(reconcile_cronjob(cronjob(policy=ConcurrencyPolicy.FORBID), [done], NOW))) == 1


def test_replace_deletes_the_active_job_first_and_allow_keeps_it() -> None:
    running = owned_job("backup-1", "2026-11-23T08:00:00Z")
    replace = reconcile_cronjob(cronjob(policy=ConcurrencyPolicy.REPLACE), [running], NOW)
    assert deleted(replace) == ["backup-1"] and len(created(replace)) == 1
    allow = reconcile_cronjob(cronjob(policy=ConcurrencyPolicy.ALLOW), [running], NOW)
    assert deleted(allow) == [] and len(created(allow)) == 1
    assert len(status(allow).active) == 2


def test_history_limits_delete_the_oldest_finished_jobs() -> None:
    ok = [owned_job(f"ok-{i}", f"2026-11-23T0{i}:00:00Z", finished="Complete") for i in range(5)]
    bad = [owned_job(f"bad-{i}", f"2026-11-23T0{i}:30:00Z", finished="Failed") for i in range(3)]
    actions = reconcile_cronjob(cronjob(last="2026-11-23T08:05:00Z", keep_ok=2, keep_failed=1), [*ok, *bad], NOW)
    assert sorted(deleted(actions)) == ["bad-0", "bad-1", "ok-0", "ok-1", "ok-2"]
    assert status(actions).last_successful_time == "2026-11-23T04:00:00Z"


def test_starting_deadline_skips_a_run_that_is_too_late() -> None:
    actions = reconcile_cronjob(cronjob(deadline=5), [], NOW)  # due 08:05:00, now 08:05:10
    assert created(actions) == []
    assert any(isinstance(s, EmitEvent) and s.reason == "MissedSchedule" for s in actions.steps)
    assert status(actions).last_schedule_time == "2026-11-23T08:05:00Z"
    assert len(created(reconcile_cronjob(cronjob(deadline=60), [], NOW))) == 1


def test_many_missed_runs_start_only_the_latest() -> None:
    actions = reconcile_cronjob(cronjob("* * * * *", last="2026-11-20T00:00:00Z"), [], NOW)
    [job] = created(actions)
    assert job.metadata.annotations[ANNOTATION_SCHEDULED_AT] == "2026-11-23T08:05:00Z"


def test_suspended_cronjob_creates_nothing() -> None:
    actions = reconcile_cronjob(cronjob(suspend=True), [], NOW)
    assert created(actions) == [] and actions.result.requeue_after is None


def test_bad_schedule_is_reported_on_the_object_not_raised() -> None:
    bad = cronjob("*/5 * * *")
    actions = reconcile_cronjob(bad, [], NOW)
    cond = condition(status(actions).conditions, "ScheduleValid")
    assert cond is not None and cond.status == "False" and "spec.schedule" in cond.message
    assert any(isinstance(s, EmitEvent) and s.reason == "InvalidSchedule" for s in actions.steps)
    assert [e.path for e in cronjob_errors(bad)] == ["spec.schedule"]
    assert "a schedule has 5" in cronjob_errors(bad)[0].message


def test_first_run_counts_from_creation() -> None:
    fresh = cronjob("0 * * * *", last="")
    actions = reconcile_cronjob(fresh, [], NOW)  # created 07:00:00; 08:00 is due
    [job] = created(actions)
    assert job.metadata.annotations[ANNOTATION_SCHEDULED_AT] == "2026-11-23T08:00:00Z"
    later = reconcile_cronjob(fresh, [], NOW - timedelta(hours=1, minutes=5, seconds=5))  # 07:00:05: not yet
    assert created(later) == []
