"""Process plumbing for the OCI driver: running runc, launching conmon, waiting for exits.

conmon is started with a sync pipe so creation is reported the moment runc has created the
container (no polling); processes are awaited through pidfds, so waiting for an exit is an event,
not a loop. It must not decide lifecycle policy: the driver does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from shoal.runtime.protocol import DriverError

__all__ = ["CommandResult", "launch_conmon", "pid_alive", "run", "wait_pid_exit"]


class CommandResult:
    __slots__ = ("returncode", "stderr", "stdout")

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


async def run(argv: Sequence[str], timeout: float = 30.0) -> CommandResult:
    """Run ``argv`` to completion without blocking the loop; kill it after ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 2)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise DriverError(f"{argv[0]} {' '.join(argv[1:3])} did not finish within {timeout:g}s") from None
    assert proc.returncode is not None
    return CommandResult(proc.returncode, out, err)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` (any, not just a child) exits; False if ``timeout`` passes first."""
    if pid <= 0:
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def _on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, _on_exit)
    try:
        await asyncio.wait_for(exited, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def launch_conmon(argv: Sequence[str], stderr_path: Path, timeout: float = 30.0) -> int:
    """Start conmon (which daemonizes and runs ``runc create``); return the container's pid once created."""
    read_fd, write_fd = os.pipe()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        with open(stderr_path, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
                pass_fds=(write_fd,),
                env={**os.environ, "_OCI_SYNCPIPE": str(write_fd)},
                cwd=stderr_path.parent,  # conmon writes files such as "oom" into its working dir
            )
    finally:
        os.close(write_fd)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise DriverError(f"conmon did not report the container within {timeout:g}s") from None
    finally:
        transport.close()
        await proc.wait()
    if not line:
        detail = stderr_path.read_text(errors="replace").strip()[-500:] if stderr_path.exists() else ""
        raise DriverError(f"conmon exited without creating the container (exit {proc.returncode}): {detail}")
    report = json.loads(line)
    pid = int(report.get("data", -1))
    if pid <= 0:
        raise DriverError(f"runc could not create the container: {report.get('message', '').strip()}")
    return pid
