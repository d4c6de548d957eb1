"""Pod status built from container views: phase, container states, conditions, CrashLoopBackOff."""

from __future__ import annotations

import datetime as dt

from shoal.agent.restarts import RestartTrack
from shoal.agent.status import ContainerView, pod_phase, pod_status
from shoal.model.pod import ContainerState, PodPhase, RestartPolicy
from shoal.runtime.protocol import ContainerInfo, StopReason

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def running(name: str) -> ContainerView:
    return ContainerView(name, "img", ContainerInfo(id=f"u-{name}", name=name, pod_uid="u",
                                                    state=ContainerState.RUNNING, pid=7, started_at=NOW))


def stopped(name: str, code: int, track: RestartTrack | None = None) -> ContainerView:
    info = ContainerInfo(id=f"u-{name}", name=name, pod_uid="u", state=ContainerState.STOPPED, exit_code=code,
                         started_at=NOW, finished_at=NOW, reason=StopReason.ERROR if code else StopReason.COMPLETED)
    return ContainerView(name, "img", info, track or RestartTrack(finished=True))


def build(views: list[ContainerView], previous: dict[str, object] | None = None,
          policy: RestartPolicy = RestartPolicy.ALWAYS) -> dict[str, object]:
    return pod_status(views, policy, host_ip="10.0.0.5", start_time="2026-03-01T11:59:00Z",
                      previous=dict(previous or {}), now=NOW)


def conditions(status: dict[str, object]) -> dict[str, str]:
    items = status["conditions"]
    assert isinstance(items, list)
    return {c["type"]: c["status"] for c in items}


def test_all_running_is_ready() -> None:
    status = build([running("a"), running("b")])
    assert status["phase"] == "Running" and status["hostIP"] == "10.0.0.5"
    assert conditions(status) == {"Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    statuses = status["containerStatuses"]
    assert isinstance(statuses, list)
    assert [s["state"] for s in statuses] == ["Running", "Running"]
    assert statuses[0]["startedAt"] == "2026-03-01T12:00:00Z"


def test_not_created_yet_is_pending_with_reason() -> None:
    status = build([running("a"), ContainerView("b", "img", None, waiting_reason="ErrImagePull",
                                                waiting_message="no such image")])
    assert status["phase"] == "Pending"
    assert conditions(status)["Ready"] == "False"
    statuses = status["containerStatuses"]
    assert isinstance(statuses, list)
    assert statuses[1] == {"name": "b", "image": "img", "restartCount": 0, "state": "Waiting",
                           "reason": "ErrImagePull", "message": "no such image"}


def test_crash_loop_shows_reason_and_next_retry() -> None:
    track = RestartTrack(restart_count=3, backoff=8, next_start=NOW + dt.timedelta(seconds=8))
    status = build([stopped("a", 2, track)])
    assert status["phase"] == "Running"
    statuses = status["containerStatuses"]
    assert isinstance(statuses, list)
    only = statuses[0]
    assert only["state"] == "Waiting" and only["reason"] == "CrashLoopBackOff"
    assert only["restartCount"] == 3 and only["exitCode"] == 2
    assert "next retry at 2026-03-01T12:00:08Z" in only["message"] and "back-off 8s" in only["message"]


def test_terminal_phases() -> None:
    assert pod_phase([stopped("a", 0), stopped("b", 0)], RestartPolicy.NEVER) is PodPhase.SUCCEEDED
    assert pod_phase([stopped("a", 0), stopped("b", 1)], RestartPolicy.NEVER) is PodPhase.FAILED
    assert pod_phase([stopped("a", 0), running("b")], RestartPolicy.NEVER) is PodPhase.RUNNING


def test_conditions_set_by_others_and_unchanged_transition_times_are_kept() -> None:
    previous = {"podIP": "10.77.0.4", "conditions": [
        {"type": "Scheduled", "status": "True", "lastTransitionTime": "2026-03-01T11:00:00Z"},
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-03-01T11:30:00Z"}]}
    status = build([running("a")], previous)
    items = status["conditions"]
    assert isinstance(items, list)
    by_type = {c["type"]: c for c in items}
    assert by_type["Scheduled"]["status"] == "True"
    assert by_type["Ready"]["lastTransitionTime"] == "2026-03-01T11:30:00Z"
    assert by_type["ContainersReady"]["lastTransitionTime"] == "2026-03-01T12:00:00Z"
    assert status["podIP"] == "10.77.0.4"
