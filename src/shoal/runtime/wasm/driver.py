"""WasmDriver: the Driver protocol for wasm pods, as a thin client of the node's wasm host process.

Each call is one JSON line over ``ROOT/host.sock`` (``messages.Request`` → ``messages.Reply``);
when no host answers, the driver starts one (``python -m shoal.runtime.wasm.host``, detached in
its own session) and waits for its socket. Instances live in the host, so they outlive this object
and the agent; ``recover()`` lists them. It must not import wasmtime (the agent stays lean) and
must not decide restart policy: the agent does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec

from shoal.model.pod import ContainerState
from shoal.runtime.oci.logs import read_log
from shoal.runtime.protocol import (
    Capabilities,
    ContainerInfo,
    ContainerNotFound,
    ContainerSpec,
    DriverError,
    ExecResult,
    ExecStream,
    LogLine,
    Stats,
    TerminalSize,
)
from shoal.runtime.wasm.messages import InstanceStatus, Op, Reply, Request, raise_for, to_info

__all__ = ["WasmDriver"]

_SOCKET, _PID_FILE, _LOG = "host.sock", "host.pid", "host.log"  # as shoal.runtime.wasm.host (no wasmtime here)
_CALL_TIMEOUT = 30.0
_NO_EXEC = ("exec is not available for wasm containers: a WebAssembly module has no shell or other "
            "processes; read its output with `shoal logs`")


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper, pid 1, has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class WasmDriver:
    def __init__(self, root_dir: str | Path = "/var/lib/shoal/wasm", *, python: str = sys.executable,
                 start_timeout: float = 15.0, cpu_window: float = 1.0) -> None:
        self.root_dir = Path(root_dir)
        self._python = python
        self._start_timeout = start_timeout
        self._cpu_window = cpu_window
        self._starting = asyncio.Lock()
        self._decoder = msgspec.json.Decoder(Reply)

    # ----- the host process ----------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        return self.root_dir / _SOCKET

    def host_pid(self) -> int:
        """The running host's pid from its pid file, or 0."""
        try:
            return int((self.root_dir / _PID_FILE).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    async def _exchange(self, req: Request, timeout: float) -> Reply:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=4 << 20)
        try:
            writer.write(msgspec.json.encode(req) + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if not line:
            raise DriverError(f"the wasm host closed the connection during {req.op.value}; see {self._host_log()}")
        return self._decoder.decode(line)

    def _host_log(self) -> Path:
        return self.root_dir / _LOG

    async def _call(self, req: Request, timeout: float = _CALL_TIMEOUT) -> Reply:
        try:
            reply = await self._exchange(req, timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            if req.id and req.op is not Op.CREATE and not (self.root_dir / "instances").is_dir():
                raise ContainerNotFound(req.id) from None  # no wasm pod ever ran here: no host for nothing
            await self._start_host()
            reply = await self._exchange(req, timeout)
        except TimeoutError:
            raise DriverError(f"the wasm host did not answer {req.op.value} within {timeout:g}s; "
                              f"see {self._host_log()}") from None
        return raise_for(reply, req.id)

    async def _start_host(self) -> None:
        async with self._starting:
            if self._ping():
                return
            self.root_dir.mkdir(parents=True, exist_ok=True)
            with open(self._host_log(), "ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    "setsid", "--fork", self._python, "-m", "shoal.runtime.wasm.host", "--root", str(self.root_dir),
                    "--cpu-window", str(self._cpu_window), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
                await proc.wait()
            deadline = time.monotonic() + self._start_timeout
            while time.monotonic() < deadline:
                if self._ping():
                    return
                await asyncio.sleep(0.05)
            tail = self._host_log().read_text(errors="replace").strip().splitlines()[-3:]
            raise DriverError(f"the wasm host did not start within {self._start_timeout:g}s "
                              f"({' | '.join(tail) or 'no output'}); see {self._host_log()}")

    def _ping(self) -> bool:
        return self._sync_status("") is not None

    def _sync_status(self, cid: str) -> InstanceStatus | None:
        """A blocking, short call (used where the caller is synchronous); None when the host is absent."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2.0)
                s.connect(str(self.socket_path))
                op = Op.INSPECT if cid else Op.VERSION
                s.sendall(msgspec.json.encode(Request(op=op, id=cid)) + b"\n")
                with s.makefile("rb") as f:
                    reply = self._decoder.decode(f.readline())
        except (OSError, msgspec.DecodeError):
            return None
        if reply.ok and reply.status is not None:
            return reply.status
        return InstanceStatus(id="", name="", pod_uid="", state=ContainerState.REMOVED) if reply.ok else None

    async def shutdown_host(self, timeout: float = 15.0) -> None:
        """Stop the host and every module it runs (node uninstall, tests); no-op when none runs."""
        pid = self.host_pid()
        with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
            await self._exchange(Request(op=Op.SHUTDOWN), timeout)
        deadline = time.monotonic() + timeout
        while pid and time.monotonic() < deadline:
            if not _running(pid):
                return
            await asyncio.sleep(0.02)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # ----- protocol ------------------------------------------------------------------------------

    async def fingerprint(self) -> Capabilities:
        reply = await self._call(Request(op=Op.VERSION))
        return Capabilities(runtime="wasmtime", version=reply.version, cgroup_version=0, seccomp=False,
                            apparmor=False, user_namespaces=False)

    async def _info(self, op: Op, cid: str, grace: float = 0.0) -> ContainerInfo:
        reply = await self._call(Request(op=op, id=cid, grace=grace), _CALL_TIMEOUT + grace)
        if reply.status is None:
            raise DriverError(f"the wasm host sent no status for {op.value} {cid!r}")
        return to_info(reply.status)

    async def status(self, container_id: str) -> InstanceStatus:
        """The host's full view: the stop message, module, log path, compile-cache hit and load time."""
        reply = await self._call(Request(op=Op.INSPECT, id=container_id))
        if reply.status is None:
            raise DriverError(f"the wasm host sent no status for {container_id!r}")
        return reply.status

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        reply = await self._call(Request(op=Op.CREATE, id=spec.id, spec=spec), _CALL_TIMEOUT * 4)
        if reply.status is None:
            raise DriverError(f"the wasm host sent no status for create {spec.id!r}")
        return to_info(reply.status)

    async def start(self, container_id: str) -> ContainerInfo:
        return await self._info(Op.START, container_id)

    async def pause(self, container_id: str) -> ContainerInfo:
        return await self._info(Op.PAUSE, container_id)

    async def resume(self, container_id: str) -> ContainerInfo:
        return await self._info(Op.RESUME, container_id)

    async def stop(self, container_id: str, grace: float) -> ContainerInfo:
        return await self._info(Op.STOP, container_id, max(grace, 0.0))

    async def remove(self, container_id: str) -> None:
        await self._call(Request(op=Op.REMOVE, id=container_id))

    async def inspect(self, container_id: str) -> ContainerInfo:
        return await self._info(Op.INSPECT, container_id)

    async def wait(self, container_id: str, timeout: float = 60.0) -> ContainerInfo:
        """The container once it is no longer Running or Paused (its exit recorded), or as it is after
        ``timeout`` seconds: wasm instances have no pid of their own for the agent to watch."""
        return await self._info(Op.WAIT, container_id, max(timeout, 0.0))

    async def recover(self) -> list[ContainerInfo]:
        if not self.socket_path.exists() and not (self.root_dir / "instances").is_dir():
            return []  # no wasm pod ever ran here: do not start a host for nothing
        reply = await self._call(Request(op=Op.LIST))
        return [to_info(s) for s in reply.items]

    async def logs(self, container_id: str, tail: int | None = None, follow: bool = False) -> AsyncIterator[LogLine]:
        status = await self.status(container_id)

        def alive() -> bool:
            now = self._sync_status(container_id)
            return now is not None and now.state in (ContainerState.RUNNING, ContainerState.PAUSED)

        async for line in read_log(Path(status.log_path), tail, follow, alive):
            yield line

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float = 30.0) -> ExecResult:
        await self.inspect(container_id)
        raise DriverError(_NO_EXEC)

    async def exec_stream(self, container_id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
                          size: TerminalSize | None = None) -> ExecStream:
        await self.inspect(container_id)
        raise DriverError(_NO_EXEC)

    async def stats(self, container_id: str) -> Stats:
        status = await self.status(container_id)
        running = status.state in (ContainerState.RUNNING, ContainerState.PAUSED)
        return Stats(cpu_usage_ns=status.cpu_usage_ns, memory_usage_bytes=status.memory_bytes,
                     memory_working_set_bytes=status.memory_bytes, memory_limit_bytes=status.memory_limit_bytes,
                     pids_current=1 if running else 0)
