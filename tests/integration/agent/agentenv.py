"""Helpers for real agent tests: the server and agent process handles, waiting, and cleanup of
everything an agent made (containers, conmons, mounts, cgroups) even when the test failed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
APPLETS = ("sh", "sleep", "echo", "cat", "true", "false", "hostname", "ls")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@dataclass
class Server:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def join_token(self) -> str:
        return (self.data_dir / "node-token").read_text().strip()

    def http(self) -> httpx.Client:
        config = yaml.safe_load((self.data_dir / "admin.yaml").read_text())
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cadata=config["ca"]),
                            headers={"Authorization": f"Bearer {config['token']}"}, timeout=10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shoal", "--config", str(self.data_dir / "admin.yaml"), *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)



@dataclass
class AgentEnv:
    base: Path
    server: Server
    data_dir: Path
    runc_root: Path
    cgroup_parent: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *extra: str, token: str | None = None, name: str = "edge-1") -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "shoal.agent", "--server", self.server.url, "--data-dir", str(self.data_dir),
                "--runc-root", str(self.runc_root), "--cgroup-parent", self.cgroup_parent, "--name", name, *extra]
        if token is not None:
            args += ["--token", token]
        log = open(self.base / f"agent-{len(self.procs)}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.base.glob("agent-*.log")))

    def runc_list(self) -> dict[str, tuple[int, str]]:
        out = subprocess.run(["runc", "--root", str(self.runc_root), "list", "-f", "json"], capture_output=True,
                             text=True, timeout=30)
        items = yaml.safe_load(out.stdout or "[]") or []
        return {c["id"]: (int(c["pid"]), c["status"]) for c in items}

    def mounts(self) -> list[str]:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return [line.split()[4] for line in f if line.split()[4].startswith(str(self.base))]

    def cgroup_dirs(self) -> list[Path]:
        rel = self.cgroup_parent.strip("/")
        return sorted(p for p in Path("/sys/fs/cgroup").glob(f"*/{rel}/**") if p.is_dir() and p.name != rel)

    def cleanup(self) -> None:
        for proc in self.procs:
            kill_group(proc, signal.SIGKILL)
        runc = ["runc", "--root", str(self.runc_root)]
        for cid in self.runc_list():
            subprocess.run([*runc, "kill", "--all", cid, "KILL"], capture_output=True, timeout=30)
            subprocess.run([*runc, "delete", "--force", cid], capture_output=True, timeout=30)
        for pidfile in self.data_dir.glob("containers/*/conmon.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        for point in sorted(self.mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
        rel = self.cgroup_parent.strip("/")
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            top = hierarchy / rel
            if top.is_dir():
                for d in sorted((p for p in top.glob("**") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        d.rmdir()
