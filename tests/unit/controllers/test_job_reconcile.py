"""The pure Job reconcile: parallelism, completions, back-off, deadline and TTL."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import msgspec
from tests.unit.controllers.helpers import T0

from shoal.controllers.actions import Actions, Create, Delete, Result, Update
from shoal.controllers.job import finished_condition, reconcile_job
from shoal.model import Container, ContainerStatus, ObjectMeta, Pod, PodPhase, PodSpec, PodStatus, PodTemplateSpec
from shoal.model.job import LABEL_JOB_NAME, Job, JobSpec, JobStatus, job_errors
from shoal.model.pod import RestartPolicy

_ids = count()


def job(completions: int = 9, parallelism: int = 3, backoff: int = 2, deadline: int | None = None,
        ttl: int | None = None, policy: RestartPolicy = RestartPolicy.NEVER, status: JobStatus | None = None) -> Job:
    template = PodTemplateSpec(spec=PodSpec(containers=[Container(name="c", image="task:1")], restart_policy=policy))
    return Job(metadata=ObjectMeta(name="batch", namespace="default", uid="job-uid", resource_version="4"),
               spec=JobSpec(completions=completions, parallelism=parallelism, backoff_limit=backoff,
                            active_deadline_seconds=deadline, ttl_seconds_after_finished=ttl, template=template),
               status=status or JobStatus())


def pod(phase: PodPhase, *, finished: str = "2026-11-23T07:59:00Z", restarts: int = 0,
        policy: RestartPolicy = RestartPolicy.NEVER) -> Pod:
    n = next(_ids)
    return Pod(metadata=ObjectMeta(name=f"batch-{n}", namespace="default", uid=f"p{n}", resource_version="9",
                                   creation_timestamp="2026-11-23T07:00:00Z"),
               spec=PodSpec(containers=[Container(name="c", image="task:1")], node_name="n1", restart_policy=policy),
               status=PodStatus(phase=phase, container_statuses=[ContainerStatus(
                   name="c", finished_at=finished if phase in (PodPhase.FAILED, PodPhase.SUCCEEDED) else "",
                   restart_count=restarts)]))


def creates(actions: Actions) -> list[Pod]:
    return [s.obj for s in actions.steps if isinstance(s, Create) and isinstance(s.obj, Pod)]


def updated(actions: Actions) -> Job:
    jobs = [s.obj for s in actions.steps if isinstance(s, Update) and isinstance(s.obj, Job)]
    assert len(jobs) == 1
    return jobs[0]


def test_starts_parallelism_pods_labelled_and_owned() -> None:
    actions = reconcile_job(job(), [], T0)
    made = creates(actions)
    assert len(made) == 3
    assert all(p.metadata.labels[LABEL_JOB_NAME] == "batch" for p in made)
    assert all(p.metadata.owner_references[0].kind == "Job" and p.metadata.owner_references[0].controller
               for p in made)
    assert updated(actions).status.active == 3 and updated(actions).status.start_time == "2026-11-23T08:00:00Z"


def test_never_more_active_than_needed_for_the_remaining_completions() -> None:
    done = [pod(PodPhase.SUCCEEDED) for _ in range(7)]
    running = [pod(PodPhase.RUNNING)]
    actions = reconcile_job(job(), [*done, *running], T0)
    assert len(creates(actions)) == 1  # 9 - 7 = 2 still needed, one already running
    too_many = [pod(PodPhase.RUNNING) for _ in range(3)]
    actions = reconcile_job(job(), [*done, *too_many], T0)
    assert len([s for s in actions.steps if isinstance(s, Delete)]) == 1


def test_completes_when_completions_succeeded() -> None:
    actions = reconcile_job(job(), [pod(PodPhase.SUCCEEDED) for _ in range(9)], T0)
    final = updated(actions)
    cond = finished_condition(final)
    assert cond is not None and cond.type == "Complete"
    assert final.status.succeeded == 9 and final.status.active == 0 and final.status.completion_time
    assert creates(actions) == []


def test_backoff_limit_fails_the_job_and_stops_active_pods() -> None:
    pods = [pod(PodPhase.FAILED) for _ in range(3)] + [pod(PodPhase.RUNNING)]
    actions = reconcile_job(job(backoff=2), pods, T0)
    cond = finished_condition(updated(actions))
    assert cond is not None and (cond.type, cond.reason) == ("Failed", "BackoffLimitExceeded")
    assert {s.name for s in actions.steps if isinstance(s, Delete)} == {pods[3].metadata.name}


def test_onfailure_restarts_count_as_failures() -> None:
    pods = [pod(PodPhase.RUNNING, restarts=3, policy=RestartPolicy.ON_FAILURE)]
    cond = finished_condition(updated(reconcile_job(job(backoff=2, policy=RestartPolicy.ON_FAILURE), pods, T0)))
    assert cond is not None and cond.reason == "BackoffLimitExceeded"


def test_failed_pod_is_replaced_after_exponential_backoff() -> None:
    failed = pod(PodPhase.FAILED, finished="2026-11-23T07:59:55Z")  # 5 s ago; first back-off is 10 s
    actions = reconcile_job(job(completions=1, parallelism=1, backoff=6), [failed], T0)
    assert creates(actions) == [] and actions.result == Result(5.0)
    later = reconcile_job(job(completions=1, parallelism=1, backoff=6), [failed], T0 + timedelta(seconds=5))
    assert len(creates(later)) == 1
    two = [pod(PodPhase.FAILED, finished="2026-11-23T07:59:55Z") for _ in range(2)]  # second failure: 20 s
    assert reconcile_job(job(completions=1, parallelism=1, backoff=6), two, T0).result == Result(15.0)


def test_active_deadline_fails_the_job() -> None:
    started = JobStatus(start_time="2026-11-23T07:59:00Z")
    running = [pod(PodPhase.RUNNING)]
    early = reconcile_job(job(deadline=120, status=started), running, T0)
    assert early.result == Result(60.0) and finished_condition(updated(early)) is None
    late = reconcile_job(job(deadline=60, status=started), running, T0)
    cond = finished_condition(updated(late))
    assert cond is not None and cond.reason == "DeadlineExceeded"
    assert {s.name for s in late.steps if isinstance(s, Delete)} == {running[0].metadata.name}


def test_ttl_after_finished_deletes_the_job() -> None:
    finished = updated(reconcile_job(job(ttl=30), [pod(PodPhase.SUCCEEDED) for _ in range(9)], T0))
    waiting = reconcile_job(finished, [], T0 + timedelta(seconds=10))
    assert waiting.steps == () and waiting.result == Result(20.0)
    gone = reconcile_job(finished, [], T0 + timedelta(seconds=30))
    assert [(s.kind, s.name) for s in gone.steps if isinstance(s, Delete)] == [("Job", "batch")]
    assert reconcile_job(updated(reconcile_job(job(), [pod(PodPhase.SUCCEEDED)] * 9, T0)), [],
                         T0 + timedelta(days=9)).steps == ()  # no ttl: kept forever


def test_counts_never_go_down_when_pods_disappear() -> None:
    seen = job(status=JobStatus(succeeded=5, failed=1, start_time="2026-11-23T07:00:00Z"))
    status = updated(reconcile_job(seen, [], T0)).status
    assert (status.succeeded, status.failed) == (5, 1)


def test_restart_policy_always_is_refused_clearly() -> None:
    bad = job(policy=RestartPolicy.ALWAYS)
    cond = finished_condition(updated(reconcile_job(bad, [], T0)))
    assert cond is not None and cond.reason == "InvalidTemplate" and "OnFailure" in cond.message
    assert [e.path for e in job_errors(bad)] == ["spec.template.spec.restartPolicy"]
    negative = msgspec.structs.replace(job(), spec=msgspec.structs.replace(job().spec, parallelism=-1))
    assert [e.path for e in job_errors(negative)] == ["spec.parallelism"]


def test_simulated_run_never_exceeds_parallelism_and_completes() -> None:
    current, pods, peak = job(), [], 0
    for step in range(40):
        actions = reconcile_job(current, pods, T0 + timedelta(seconds=step))
        gone = {s.name for s in actions.steps if isinstance(s, Delete)}
        pods = [p for p in pods if p.metadata.name not in gone] + creates(actions)
        current = next((s.obj for s in actions.steps if isinstance(s, Update) and isinstance(s.obj, Job)), current)
        active = [p for p in pods if p.status.phase not in (PodPhase.SUCCEEDED, PodPhase.FAILED)]
        peak = max(peak, len(active))
        if active:  # one pod finishes per step
            first = active[0]
            pods = [msgspec.structs.replace(p, status=PodStatus(phase=PodPhase.SUCCEEDED)) if p is first else p
                    for p in pods]
    assert peak == 3
    assert sum(1 for p in pods if p.status.phase == PodPhase.SUCCEEDED) == 9
    cond = finished_condition(current)
    assert cond is not None and cond.type == "Complete"
