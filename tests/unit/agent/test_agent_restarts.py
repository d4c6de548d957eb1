"""Restart policy and crash-loop backoff: 1 s, doubling, capped at 5 min, reset after 10 s up."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from shoal.agent.restarts import (
    MAX_BACKOFF,
    Decision,
    RestartTrack,
    decide,
    next_backoff,
    restarted,
    should_restart,
)
from shoal.model.pod import ContainerState, RestartPolicy
from shoal.runtime.protocol import ContainerInfo, StopReason

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def stopped(code: int, started: float, finished: float) -> ContainerInfo:
    return ContainerInfo(id="c", name="c", pod_uid="u", state=ContainerState.STOPPED, exit_code=code,
                         started_at=T0 + dt.timedelta(seconds=started), finished_at=T0 + dt.timedelta(seconds=finished),
                         reason=StopReason.COMPLETED if code == 0 else StopReason.ERROR)


def test_backoff_doubles_from_one_second_to_five_minutes() -> None:
    delays, previous = [], 0.0
    for _ in range(12):
        previous = next_backoff(previous, ran_for=0.5)
        delays.append(previous)
    assert delays[:5] == [1, 2, 4, 8, 16]
    assert delays[-1] == MAX_BACKOFF == 300


def test_backoff_resets_after_ten_seconds_of_running() -> None:
    assert next_backoff(64, ran_for=9.9) == 128
    assert next_backoff(64, ran_for=10) == 1


@given(st.floats(min_value=0, max_value=1e6), st.floats(min_value=0, max_value=1e6))
def test_backoff_always_within_bounds(previous: float, ran_for: float) -> None:
    assert 1 <= next_backoff(previous, ran_for) <= MAX_BACKOFF


def test_restart_policies() -> None:
    assert should_restart(RestartPolicy.ALWAYS, 0) and should_restart(RestartPolicy.ALWAYS, 1)
    assert should_restart(RestartPolicy.ON_FAILURE, 2) and not should_restart(RestartPolicy.ON_FAILURE, 0)
    assert not should_restart(RestartPolicy.NEVER, 1)


def test_crash_waits_one_second_then_restarts() -> None:
    info = stopped(1, 0, 1)
    decision, track = decide(info, RestartTrack(), RestartPolicy.ALWAYS, T0 + dt.timedelta(seconds=1.2))
    assert decision is Decision.WAIT
    assert track.next_start == T0 + dt.timedelta(seconds=2)
    decision, track = decide(info, track, RestartPolicy.ALWAYS, T0 + dt.timedelta(seconds=2))
    assert decision is Decision.RESTART
    assert restarted(track).restart_count == 1 and restarted(track).next_start is None


def test_an_exit_is_decided_once_so_the_backoff_grows_per_crash() -> None:
    track = RestartTrack()
    now = T0
    delays = []
    for n in range(5):
        info = stopped(1, n * 100, n * 100 + 1)
        now = T0 + dt.timedelta(seconds=n * 100 + 1)
        _, track = decide(info, track, RestartPolicy.ALWAYS, now)
        _, again = decide(info, track, RestartPolicy.ALWAYS, now)  # the same exit seen twice
        assert again == track
        delays.append(track.backoff)
        track = restarted(track)
    assert delays == [1, 2, 4, 8, 16]
    assert track.restart_count == 5


def test_completed_container_under_on_failure_is_finished() -> None:
    decision, track = decide(stopped(0, 0, 3), RestartTrack(), RestartPolicy.ON_FAILURE, T0)
    assert decision is Decision.FINISHED and track.finished


def test_running_container_clears_a_pending_restart() -> None:
    running = ContainerInfo(id="c", name="c", pod_uid="u", state=ContainerState.RUNNING, pid=5)
    decision, track = decide(running, RestartTrack(next_start=T0, backoff=4), RestartPolicy.ALWAYS, T0)
    assert decision is Decision.KEEP and track.next_start is None and track.backoff == 4
