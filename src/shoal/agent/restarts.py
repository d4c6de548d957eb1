"""Restart policy and crash-loop backoff for one container, as pure functions of plain data.

Owns ``RestartTrack`` (what the agent remembers about a container's restarts, persisted in the
cache) and ``decide``: given the driver's view of a container, its track, the pod's restart
policy and the clock, whether to keep it, restart it now, wait until a time, or leave it finished.
Backoff is 1 s, doubling, capped at 5 min, reset after 10 s of running (DESIGN). It must not
call a driver, read the clock itself or do I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum

from shoal.model.pod import ContainerState, RestartPolicy
from shoal.runtime.protocol import ContainerInfo

__all__ = [
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "RESET_AFTER",
    "Decision",
    "RestartTrack",
    "decide",
    "next_backoff",
    "restarted",
    "should_restart",
]

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 300.0
RESET_AFTER = 10.0


class Decision(StrEnum):
    KEEP = "Keep"  # running, paused or created: nothing to do
    RESTART = "Restart"  # stopped and due for a restart now
    WAIT = "Wait"  # stopped, restart due at ``RestartTrack.next_start``
    FINISHED = "Finished"  # stopped for good under the pod's restart policy


@dataclass(frozen=True, slots=True)
class RestartTrack:
    """What the agent remembers about one container across its restarts (and its own)."""

    restart_count: int = 0
    backoff: float = 0.0  # the delay used before the latest restart; 0 = none yet
    next_start: dt.datetime | None = None  # when a pending restart is due
    handled_exit: str = ""  # finished_at of the exit already decided on (ISO), so it is decided once
    finished: bool = False  # the policy said do not restart


def should_restart(policy: RestartPolicy, exit_code: int | None) -> bool:
    if policy is RestartPolicy.ALWAYS:
        return True
    if policy is RestartPolicy.ON_FAILURE:
        return exit_code != 0
    return False


def next_backoff(previous: float, ran_for: float) -> float:
    """The delay before the next restart: 1 s first, doubling, capped at 5 min, reset after 10 s up."""
    if previous <= 0 or ran_for >= RESET_AFTER:
        return INITIAL_BACKOFF
    return min(max(previous * 2, INITIAL_BACKOFF), MAX_BACKOFF)


def _exit_key(info: ContainerInfo) -> str:
    stamp = info.finished_at.isoformat() if info.finished_at else "unknown"
    return f"{stamp}/{info.started_at.isoformat() if info.started_at else ''}"


def decide(info: ContainerInfo, track: RestartTrack, policy: RestartPolicy,
           now: dt.datetime) -> tuple[Decision, RestartTrack]:
    """The next step for a container and its updated track (the caller persists a changed track)."""
    if info.state is not ContainerState.STOPPED:
        if track.next_start is not None or track.finished:
            return Decision.KEEP, replace(track, next_start=None, finished=False)
        return Decision.KEEP, track
    key = _exit_key(info)
    if track.handled_exit != key:
        if not should_restart(policy, info.exit_code):
            return Decision.FINISHED, replace(track, handled_exit=key, next_start=None, finished=True)
        ran_for = 0.0
        if info.started_at and info.finished_at:
            ran_for = (info.finished_at - info.started_at).total_seconds()
        delay = next_backoff(track.backoff, ran_for)
        base = info.finished_at if info.finished_at and info.finished_at <= now else now
        track = replace(track, handled_exit=key, backoff=delay, finished=False,
                        next_start=base + dt.timedelta(seconds=delay))
    if track.finished:
        return Decision.FINISHED, track
    if track.next_start is None or track.next_start <= now:
        return Decision.RESTART, track
    return Decision.WAIT, track


def restarted(track: RestartTrack) -> RestartTrack:
    """The track after the agent restarted the container."""
    return replace(track, restart_count=track.restart_count + 1, next_start=None)
