"""Interactive exec on runc: a process in a running container with live stdin, stdout and stderr.

Without a terminal ``runc exec`` runs in the foreground with pipes for stdio and returns the
process's exit code. With a terminal runc must detach (``--console-socket`` only works with
``-d``): it sends the pty master over a unix socket this module listens on (runc's ``recvtty``
protocol), and a small subreaper helper (this module run with ``-m``) starts ``runc exec -d`` and
reaps the detached process to learn its exit code. The process is killed (SIGKILL, by the pid
runc wrote) when the stream is closed before it ended. This module must not decide which
commands may run or who may run them: the agent and the server do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from shoal.runtime.protocol import DriverError, TerminalSize

__all__ = ["RuncExec", "start_runc_exec"]

_READ = 64 << 10
_CONNECT_SECONDS = 30.0
_DRAIN_SECONDS = 0.5  # output still read after the process ended (a background child may keep the pty)
_KILL_WAIT = 5.0
_PR_SET_CHILD_SUBREAPER = 36
_EOT = b"\x04"  # what Ctrl-D sends: end of input for a terminal in canonical mode


class _HelperReport(msgspec.Struct):
    exitCode: int
    message: str = ""


async def _wait_fd(fd: int, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if writable else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writable else loop.remove_reader)(fd)


async def _read_pty(fd: int) -> bytes:
    """The next output of a pty master; b"" once every slave end is closed (Linux reports EIO)."""
    while True:
        try:
            return os.read(fd, _READ)
        except BlockingIOError:
            await _wait_fd(fd, writable=False)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise


async def _write_pty(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await _wait_fd(fd, writable=True)


class RuncExec:
    """One exec'd process: ``output`` streams what it writes, ``write``/``close_stdin``/``resize``
    feed it, ``wait`` gives its exit code and ``close`` kills it if it still runs."""

    def __init__(self, proc: asyncio.subprocess.Process, pid_file: Path, work_dir: Path, master: int | None) -> None:
        self.tty = master is not None
        self._proc = proc  # runc itself (pipes) or the subreaper helper (tty)
        self._pid_file = pid_file
        self._work_dir = work_dir
        self._master = master
        self._closed = False

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """("stdout" | "stderr", bytes) as the process writes them, until it closed them or ended."""
        readers: dict[str, Callable[[], Awaitable[bytes]]] = {}
        if self._master is not None:
            master = self._master
            readers["stdout"] = lambda: _read_pty(master)
        else:
            for name, pipe in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr)):
                if pipe is not None:
                    readers[name] = lambda pipe=pipe: pipe.read(_READ)  # type: ignore[misc]
        pending: dict[asyncio.Future[Any], str] = {asyncio.ensure_future(read()): name
                                                     for name, read in readers.items()}
        exited: asyncio.Future[Any] = asyncio.ensure_future(self._proc.wait())
        try:
            while pending:
                timeout = _DRAIN_SECONDS if exited.done() else None
                done, _ = await asyncio.wait([*pending, exited], timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    return
                for task in done:
                    name = pending.pop(task, "")
                    if not name:
                        continue
                    data = task.result()
                    if data:
                        yield name, data
                        pending[asyncio.ensure_future(readers[name]())] = name
        finally:
            for task in (*pending, exited):
                task.cancel()

    async def write(self, data: bytes) -> None:
        if self._master is not None:
            await _write_pty(self._master, data)
            return
        pipe = self._proc.stdin
        if pipe is None or pipe.is_closing():
            raise DriverError("this exec has no stdin open (start it with stdin, and only until it is closed)")
        pipe.write(data)
        try:
            await pipe.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise DriverError("the process closed its stdin") from None

    async def close_stdin(self) -> None:
        """End of input: the pipe is closed; a terminal gets Ctrl-D, as a user typing it would send."""
        if self._master is not None:
            await _write_pty(self._master, _EOT)
        elif self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()

    def resize(self, size: TerminalSize) -> None:
        if self._master is not None:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))

    async def wait(self) -> int:
        code = await self._proc.wait()
        if self._master is None:
            return code
        out = await self._proc.stdout.read() if self._proc.stdout is not None else b""
        try:
            report = msgspec.json.decode(out.strip().splitlines()[-1], type=_HelperReport)
        except (msgspec.ValidationError, msgspec.DecodeError, IndexError):
            raise DriverError(f"the exec helper ended without a report (exit {code})") from None
        if report.exitCode < 0:
            raise DriverError(report.message)
        return report.exitCode

    async def close(self) -> None:
        """Kill the process if it still runs and release the pty, socket and helper; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._proc.returncode is None:
                with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                    os.kill(int(self._pid_file.read_text().strip()), signal.SIGKILL)
                try:
                    await asyncio.wait_for(self._proc.wait(), _KILL_WAIT)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        self._proc.kill()
                    await self._proc.wait()
        finally:
            if self._master is not None:
                os.close(self._master)
            shutil.rmtree(self._work_dir, ignore_errors=True)


async def _receive_master(listener: socket.socket, helper: asyncio.subprocess.Process) -> int:
    """The pty master runc sends over the console socket; DriverError with runc's words if it failed."""
    loop = asyncio.get_running_loop()
    accept = asyncio.ensure_future(loop.sock_accept(listener))
    exited = asyncio.ensure_future(helper.wait())
    try:
        done, _ = await asyncio.wait([accept, exited], timeout=_CONNECT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (accept, exited):
            if not task.done():
                task.cancel()
    if accept not in done:
        out = await helper.stdout.read() if helper.stdout is not None and exited in done else b""
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError, IndexError):
            raise DriverError(msgspec.json.decode(out.strip().splitlines()[-1], type=_HelperReport).message)
        raise DriverError(f"runc did not send the terminal within {_CONNECT_SECONDS:g}s")
    conn, _ = accept.result()
    with conn:
        conn.setblocking(True)
        conn.settimeout(_CONNECT_SECONDS)
        _, fds, _, _ = await loop.run_in_executor(None, socket.recv_fds, conn, 4096, 1)
    if not fds:
        raise DriverError("runc connected to the console socket but sent no terminal")
    os.set_blocking(fds[0], False)
    return fds[0]


async def start_runc_exec(runc: Sequence[str], container_id: str, argv: Sequence[str], *, tty: bool, stdin: bool,
                          size: TerminalSize | None) -> RuncExec:
    """Start ``argv`` in the container; ``runc`` is the runc command with its global flags."""
    work_dir = Path(tempfile.mkdtemp(prefix="shoal-exec-"))
    pid_file = work_dir / "pid"
    try:
        if not tty:
            proc = await asyncio.create_subprocess_exec(
                *runc, "exec", "--pid-file", str(pid_file), container_id, *argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            return RuncExec(proc, pid_file, work_dir, None)
        console = str(work_dir / "console.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(console)
            listener.listen(1)
            listener.setblocking(False)
            helper = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shoal.runtime.oci.execstream", str(pid_file),
                *runc, "exec", "-d", "--tty", "--console-socket", console, "--pid-file", str(pid_file),
                container_id, *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                master = await _receive_master(listener, helper)
            except BaseException:
                await RuncExec(helper, pid_file, work_dir, None).close()
                raise
        running = RuncExec(helper, pid_file, work_dir, master)
        if size is not None:
            running.resize(size)
        return running
    except OSError as exc:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise DriverError(f"could not start runc exec: {exc}") from None


def _subreaper(pid_file: str, runc_argv: list[str]) -> _HelperReport:
    """Run ``runc exec -d`` as a child subreaper, then reap the detached process: its exit code."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return _HelperReport(-1, f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")
    started = subprocess.run(runc_argv, capture_output=True, check=False)
    if started.returncode != 0:
        words = started.stderr.decode(errors="replace").strip().splitlines()
        return _HelperReport(-1, f"runc exec failed: {words[-1] if words else 'exit ' + str(started.returncode)}")
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError) as exc:
        return _HelperReport(-1, f"runc exec wrote no pid file: {exc}")
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return _HelperReport(-1, "the exec'd process was not reparented to the exec helper")
        if reaped == pid:
            code = os.waitstatus_to_exitcode(status)
            return _HelperReport(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.write(msgspec.json.encode(_subreaper(sys.argv[1], sys.argv[2:])).decode() + "\n")
