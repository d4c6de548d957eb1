"""FakeDriver: the Driver protocol in memory, for agent unit tests.

It honours the lifecycle state machine exactly as the real drivers do, keeps logs and exec
answers the test scripts into it, and can simulate a container exiting (``exit``) or being
OOM-killed. It must not touch the host: no processes, files or cgroups.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shoal.model.pod import ContainerState
from shoal.runtime.lifecycle import transition
from shoal.runtime.protocol import (
    Capabilities,
    ContainerInfo,
    ContainerNotFound,
    ContainerSpec,
    DriverError,
    ExecResult,
    LogLine,
    Stats,
    StopReason,
)

__all__ = ["FakeDriver"]

ExecHandler = Callable[[str, Sequence[str]], ExecResult]


@dataclass(slots=True)
class _Entry:
    spec: ContainerSpec
    info: ContainerInfo
    logs: list[LogLine] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


class FakeDriver:
    """An in-memory runtime. ``clock`` stamps start/finish times; ``exec_handler`` answers exec."""

    def __init__(self, clock: Callable[[], datetime] = _now, exec_handler: ExecHandler | None = None) -> None:
        self._clock = clock
        self._exec = exec_handler
        self._entries: dict[str, _Entry] = {}
        self._next_pid = 1000
        self.calls: list[tuple[str, str]] = []

    def _get(self, container_id: str) -> _Entry:
        entry = self._entries.get(container_id)
        if entry is None:
            raise ContainerNotFound(container_id)
        return entry

    def _move(self, container_id: str, target: ContainerState, **changes: object) -> ContainerInfo:
        entry = self._get(container_id)
        transition(entry.info.state, target, container_id)
        entry.info = replace(entry.info, state=target, **changes)  # type: ignore[arg-type]
        return entry.info

    async def fingerprint(self) -> Capabilities:
        return Capabilities(
            runtime="fake", version="0", cgroup_version=2, seccomp=True, apparmor=False, user_namespaces=True
        )

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        self.calls.append(("create", spec.id))
        if spec.id in self._entries:
            raise DriverError(f"container {spec.id!r} already exists; remove it first or use another id")
        info = ContainerInfo(id=spec.id, name=spec.name, pod_uid=spec.pod_uid, state=ContainerState.CREATED)
        self._entries[spec.id] = _Entry(spec=spec, info=info)
        return info

    async def start(self, container_id: str) -> ContainerInfo:
        self.calls.append(("start", container_id))
        self._next_pid += 1
        return self._move(
            container_id,
            ContainerState.RUNNING,
            pid=self._next_pid,
            started_at=self._clock(),
            exit_code=None,
            finished_at=None,
            reason=None,
        )

    async def pause(self, container_id: str) -> ContainerInfo:
        self.calls.append(("pause", container_id))
        return self._move(container_id, ContainerState.PAUSED)

    async def resume(self, container_id: str) -> ContainerInfo:
        self.calls.append(("resume", container_id))
        return self._move(container_id, ContainerState.RUNNING)

    async def stop(self, container_id: str, grace: float) -> ContainerInfo:
        self.calls.append(("stop", container_id))
        entry = self._get(container_id)
        if entry.info.state is ContainerState.STOPPED:
            return entry.info
        return self.exit(container_id, 137 if grace <= 0 else 143)

    def exit(self, container_id: str, exit_code: int, oom: bool = False) -> ContainerInfo:
        """Simulate the container's process ending by itself (or being OOM-killed)."""
        reason = StopReason.COMPLETED if exit_code == 0 else StopReason.ERROR
        if oom:
            reason = StopReason.OOM_KILLED
        return self._move(
            container_id,
            ContainerState.STOPPED,
            pid=0,
            exit_code=exit_code,
            finished_at=self._clock(),
            reason=reason,
        )

    async def remove(self, container_id: str) -> None:
        self.calls.append(("remove", container_id))
        self._move(container_id, ContainerState.REMOVED)
        del self._entries[container_id]

    async def inspect(self, container_id: str) -> ContainerInfo:
        return self._get(container_id).info

    async def recover(self) -> list[ContainerInfo]:
        return [e.info for e in self._entries.values()]

    def write_log(self, container_id: str, message: str, stream: str = "stdout") -> None:
        ts = self._clock().isoformat()
        self._get(container_id).logs.append(LogLine(timestamp=ts, stream=stream, partial=False, message=message))

    async def logs(self, container_id: str, tail: int | None = None, follow: bool = False) -> AsyncIterator[LogLine]:
        lines = self._get(container_id).logs
        for line in lines[-tail:] if tail is not None and tail > 0 else ([] if tail == 0 else lines):
            yield line

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float = 30.0) -> ExecResult:
        entry = self._get(container_id)
        if entry.info.state is not ContainerState.RUNNING:
            raise DriverError(f"container {container_id!r} is {entry.info.state.value}; exec needs Running")
        if self._exec is not None:
            return self._exec(container_id, argv)
        return ExecResult(exit_code=0, stdout=b"", stderr=b"")

    async def stats(self, container_id: str) -> Stats:
        entry = self._get(container_id)
        return Stats(
            cpu_usage_ns=0,
            memory_usage_bytes=0,
            memory_working_set_bytes=0,
            memory_limit_bytes=entry.spec.resources.memory_limit_bytes,
            pids_current=1 if entry.info.state is ContainerState.RUNNING else 0,
        )
