"""FakeDriver: the Driver protocol in memory, for agent unit tests.

It honours the lifecycle state machine exactly as the real drivers do, keeps logs and exec
answers the test scripts into it (an interactive exec behaves like ``cat``: stdin comes back on
stdout, and ``exit N`` on a line of its own ends it with code N), and can simulate a container
exiting (``exit``) or being OOM-killed. It must not touch the host: no processes, files or cgroups.
"""

from __future__ import annotations

import asyncio
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
    TerminalSize,
)

__all__ = ["FakeDriver", "FakeExecStream"]

ExecHandler = Callable[[str, Sequence[str]], ExecResult]


@dataclass(slots=True)
class _Entry:
    spec: ContainerSpec
    info: ContainerInfo
    logs: list[LogLine] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


class FakeExecStream:
    """An interactive exec in memory: echoes stdin, records window sizes, ends on EOF or ``exit N``."""

    def __init__(self, argv: Sequence[str], tty: bool, stdin: bool, size: TerminalSize | None) -> None:
        self.argv = tuple(argv)
        self.tty = tty
        self.stdin = stdin
        self.sizes: list[TerminalSize] = [size] if size is not None else []
        self.closed = False
        self._exit_code = 0
        self._output: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
        self._ended = asyncio.Event()
        self._line = b""

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        while (chunk := await self._output.get()) is not None:
            yield "stdout", chunk

    async def write(self, data: bytes) -> None:
        if self._ended.is_set() or not self.stdin:
            raise DriverError("this exec has no stdin open")
        await self._output.put(data)
        self._line += data
        while b"\n" in self._line:
            line, _, self._line = self._line.partition(b"\n")
            words = line.split()
            if len(words) == 2 and words[0] == b"exit" and words[1].isdigit():
                self._exit_code = int(words[1])
                await self._end()
                return

    async def close_stdin(self) -> None:
        await self._end()

    async def _end(self) -> None:
        if not self._ended.is_set():
            self._ended.set()
            await self._output.put(None)

    def resize(self, size: TerminalSize) -> None:
        self.sizes.append(size)

    async def wait(self) -> int:
        await self._ended.wait()
        return self._exit_code

    async def close(self) -> None:
        self.closed = True
        if not self._ended.is_set():
            self._exit_code = 137
            self._ended.set()
            while not self._output.empty():  # nobody reads what a killed process wrote
                self._output.get_nowait()
            self._output.put_nowait(None)


class FakeDriver:
    """An in-memory runtime. ``clock`` stamps start/finish times; ``exec_handler`` answers exec."""

    def __init__(self, clock: Callable[[], datetime] = _now, exec_handler: ExecHandler | None = None) -> None:
        self._clock = clock
        self._exec = exec_handler
        self._entries: dict[str, _Entry] = {}
        self._next_pid = 1000
        self.calls: list[tuple[str, str]] = []
        self.exec_streams: list[FakeExecStream] = []

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

    async def exec_stream(self, container_id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
                          size: TerminalSize | None = None) -> FakeExecStream:
        entry = self._get(container_id)
        if entry.info.state is not ContainerState.RUNNING:
            raise DriverError(f"container {container_id!r} is {entry.info.state.value}; exec needs Running")
        stream = FakeExecStream(argv, tty, stdin, size)
        self.exec_streams.append(stream)
        return stream

    async def stats(self, container_id: str) -> Stats:
        entry = self._get(container_id)
        return Stats(
            cpu_usage_ns=0,
            memory_usage_bytes=0,
            memory_working_set_bytes=0,
            memory_limit_bytes=entry.spec.resources.memory_limit_bytes,
            pids_current=1 if entry.info.state is ContainerState.RUNNING else 0,
        )
