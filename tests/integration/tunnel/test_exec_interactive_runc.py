"""`shoal exec -i` and `shoal exec -it` as a user types them, against a real busybox container under
runc, through a real agent's tunnel to a real server: stdin reaches the process, output streams
back, a pseudo-terminal follows the user's window size, and the exit code comes back."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from agentenv import ROOT, AgentEnv, Server, wait_until

IDLE = "trap 'exit 0' TERM; while true; do sleep 1; done"


def _pod(name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "edge-1", "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", IDLE]}]}}


def _running(http: httpx.Client, name: str) -> bool:
    pod = http.get(f"/api/v1/namespaces/default/pods/{name}").json()
    return pod.get("status", {}).get("phase") == "Running"


def _cli(server: Server, *args: str) -> list[str]:
    return [sys.executable, "-m", "shoal", "--config", str(server.data_dir / "admin.yaml"), *args]


class _Terminal:
    """The CLI on the slave side of a pty, as in a user's terminal emulator; we are the emulator."""

    def __init__(self, argv: list[str], rows: int, cols: int) -> None:
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # the child: its controlling terminal is the pty
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.chdir(ROOT)
            os.execv(argv[0], argv)
        self.seen = b""
        self.status: int | None = None

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, needle: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the CLI exited and closed the terminal
                    break
                if not chunk:
                    break
                self.seen += chunk
        assert needle in self.seen, f"{needle!r} never appeared; the terminal showed {self.seen!r}"
        return self.seen

    def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if ready:
                    self.seen += os.read(self.master, 4096)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError(f"the CLI did not exit within {timeout}s; the terminal showed {self.seen!r}")

    def close(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        os.close(self.master)


@contextlib.contextmanager
def _terminal(argv: list[str], rows: int = 24, cols: int = 80) -> Iterator[_Terminal]:
    term = _Terminal(argv, rows, cols)
    try:
        yield term
    finally:
        term.close()


def _sleepers(agent_env: AgentEnv) -> list[int]:
    """Pids of `sleep 300` processes in the test's containers."""
    found = []
    for cid in agent_env.runc_list():
        out = subprocess.run(["runc", "--root", str(agent_env.runc_root), "ps", "-f", "json", cid],
                             capture_output=True, text=True, timeout=30)
        for pid in json.loads(out.stdout or "[]") or []:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00300\x00":
                    found.append(int(pid))
    return found


def test_interactive_exec_through_the_tunnel(agent_env: AgentEnv, server: Server, image: str) -> None:
    agent_env.start(token=server.join_token)
    with server.http() as http:
        assert http.post("/api/v1/namespaces/default/pods", json=_pod("web", image)).status_code == 201
        wait_until(lambda: _running(http, "web"), 60, "pod Running", 0.1)
        wait_until(lambda: server.cli("exec", "web", "--", "true").returncode == 0, 30, "the agent's tunnel", 0.2)

        # -i without a tty: stdin streams in, EOF closes it, cat's output and exit code come back.
        piped = subprocess.run(_cli(server, "exec", "-i", "web", "--", "cat"), input=b"hello\nworld\n" * 1000,
                               capture_output=True, timeout=60, cwd=ROOT)
        assert (piped.returncode, piped.stdout, piped.stderr) == (0, b"hello\nworld\n" * 1000, b"")
        failing = subprocess.run(_cli(server, "exec", "-i", "web", "--", "sh", "-c", "cat; echo bad >&2; exit 4"),
                                 input=b"in\n", capture_output=True, timeout=60, cwd=ROOT)
        assert (failing.returncode, failing.stdout, failing.stderr) == (4, b"in\n", b"bad\n")

        # -it: a shell on a pseudo-terminal, driven as a user at a terminal would.
        with _terminal(_cli(server, "exec", "-it", "web", "--", "sh"), rows=30, cols=100) as term:
            term.read_until(b"/ # ", 30)  # the prompt: a user types once they see it
            term.type("echo $((6*7))\n")
            term.read_until(b"42\r\n", 30)
            term.type("busybox stty size\n")
            term.read_until(b"30 100\r\n", 15)
            term.resize(50, 132)  # the CLI gets SIGWINCH and forwards the new size
            time.sleep(0.5)
            term.type("busybox stty size\n")
            term.read_until(b"50 132\r\n", 15)
            term.type("exit 3\n")
            assert term.exit_code(30) == 3
            local = termios.tcgetattr(term.master)[3]  # the CLI put it back as it found it: not raw
            assert local & termios.ICANON and local & termios.ECHO

        # -it with Ctrl-D: the remote shell sees end of input and exits 0.
        with _terminal(_cli(server, "exec", "-it", "web", "--", "sh")) as term:
            term.read_until(b"/ # ", 30)
            term.type("echo ready\n")
            term.read_until(b"ready\r\n", 30)
            term.type("\x04")
            assert term.exit_code(30) == 0

        # A user who goes away (the CLI is killed) does not leave the process running in the container.
        with _terminal(_cli(server, "exec", "-it", "web", "--", "sh", "-c", "echo up; sleep 300")) as term:
            term.read_until(b"up", 30)
            assert len(_sleepers(agent_env)) == 1
        wait_until(lambda: _sleepers(agent_env) == [], 20, "the exec'd process to be killed", 0.2)
        piping = subprocess.Popen(_cli(server, "exec", "-i", "web", "--", "sh", "-c", "echo up; sleep 300"),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
        try:
            assert piping.stdout is not None and piping.stdout.readline() == b"up\n"
            assert len(_sleepers(agent_env)) == 1
        finally:
            piping.kill()
            piping.communicate(timeout=10)
        wait_until(lambda: _sleepers(agent_env) == [], 20, "the piped exec'd process to be killed", 0.2)
