"""The container lifecycle state machine of DESIGN, as pure data and one function.

Created → Running ⇄ Paused, Running → Stopped → Running, Stopped/Created → Removed. Owns the
allowed transitions and ``InvalidTransition``; it must not know how a runtime performs them.
"""

from __future__ import annotations

from shoal.model.pod import ContainerState
from shoal.runtime.protocol import DriverError

__all__ = ["ALLOWED", "InvalidTransition", "transition"]

_S = ContainerState

ALLOWED: frozenset[tuple[ContainerState, ContainerState]] = frozenset(
    {
        (_S.CREATED, _S.RUNNING),
        (_S.RUNNING, _S.PAUSED),
        (_S.PAUSED, _S.RUNNING),
        (_S.RUNNING, _S.STOPPED),
        (_S.STOPPED, _S.RUNNING),
        (_S.STOPPED, _S.REMOVED),
        (_S.CREATED, _S.REMOVED),
    }
)


class InvalidTransition(DriverError):
    def __init__(self, current: ContainerState, target: ContainerState, container_id: str = "") -> None:
        who = f"container {container_id!r}: " if container_id else ""
        allowed = sorted(t.value for s, t in ALLOWED if s == current)
        hint = f"from {current.value} it can go to {', '.join(allowed)}" if allowed else "it is final"
        super().__init__(f"{who}cannot go from {current.value} to {target.value} ({hint})")
        self.current = current
        self.target = target


def transition(current: ContainerState, target: ContainerState, container_id: str = "") -> ContainerState:
    """``target`` if the lifecycle allows ``current → target``, else ``InvalidTransition``."""
    if (current, target) not in ALLOWED:
        raise InvalidTransition(current, target, container_id)
    return target
