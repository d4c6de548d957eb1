"""Helpers for real agent tests (and the pod-start benchmark): a shoal server, a loopback registry
with a busybox-static image, the agent process handles, waiting, and cleanup of everything an
agent made (containers, conmons, mounts, cgroups) even when the test failed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.hostclean import cgroup_tops, kill_pid_files, kill_runc_containers, remove_cgroup_trees, unmount_all
from tests.tarballs import tar_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
APPLETS = ("sh", "sleep", "echo", "cat", "true", "false", "hostname", "ls", "httpd", "rm", "mkdir", "test", "touch",
           "nc", "wget", "timeout", "ip")


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


@contextlib.contextmanager
def serve_busybox_image(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT/test/busybox:1`` in a real Debian docker-registry: busybox-static FROM scratch."""
    from shoal.image.assemble import create_image
    from shoal.image.content import ContentStore
    from shoal.image.pull import push_image
    from shoal.image.reference import parse_reference

    port, root = free_port(), tmp_path / "registry"
    root.mkdir()
    config = root / "config.yml"
    config.write_text("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200
            return False

        wait_until(up, 15, "docker-registry")
        entries: list[tuple[str, bytes | str | None, int]] = [("bin", None, 0o755),
                                                              ("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)]
        entries += [(f"bin/{a}", "busybox", 0o777) for a in APPLETS]
        entries += [(d, None, 0o755) for d in ("proc", "sys", "dev", "tmp", "etc")]
        name = f"127.0.0.1:{port}/test/busybox:1"
        store = ContentStore(tmp_path / "build-store")
        create_image(store, name, [tar_of(*entries)], config={"Cmd": ["sleep", "3600"]})
        asyncio.run(push_image(store, name, parse_reference(name)))
        yield name
    finally:
        kill_group(proc)


def start_server(data_dir: Path, port: int, log_path: Path, *extra: str) -> Server:
    """A ``shoal server`` on loopback, ready to serve; the caller stops ``.process`` (kill_group)."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "shoal", "server", "--data-dir",
                                 str(data_dir), "--port", str(port), "--log-level", "warning", *extra],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    running = Server(data_dir, port, proc, log_path)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"shoal server exited: {log_path.read_text()}")
        if not (data_dir / "admin.yaml").exists():
            return False
        with contextlib.suppress(httpx.HTTPError, OSError, TypeError, KeyError, yaml.YAMLError), running.http() as http:
            return http.get("/readyz").status_code == 200
        return False

    try:
        wait_until(ready, 30, "the shoal server", 0.1)
    except BaseException:
        kill_group(proc)
        raise
    return running


@dataclass
class AgentEnv:
    base: Path
    server: Server
    data_dir: Path
    runc_root: Path
    cgroup_parent: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    netns: Path | None = None  # run the agent in this network namespace (pod networking tests)
    bridge: str = ""  # "": no pod networking (--no-pod-network --no-services), as on a bare host
    server_url: str = ""  # how the agent reaches the server (default: the server's loopback URL)

    def start(self, *extra: str, token: str | None = None, name: str = "edge-1") -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "shoal.agent", "--server", self.server_url or self.server.url,
                "--data-dir", str(self.data_dir),
                "--runc-root", str(self.runc_root), "--cgroup-parent", self.cgroup_parent, "--name", name, *extra]
        if token is not None:
            args += ["--token", token]
        if self.bridge:
            args += ["--bridge", self.bridge, "--netns-dir", str(self.base / "netns")]
        else:
            args += ["--no-pod-network", "--no-services"]
        if self.netns is not None:
            args = ["nsenter", f"--net={self.netns}", *args]
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
            points = [line.split()[4] for line in f if line.split()[4].startswith(str(self.base))]
        return [p for p in points if p != str(self.netns)]  # the test's "host" namespace is not the agent's

    def cgroup_dirs(self) -> list[Path]:
        rel = self.cgroup_parent.strip("/")
        return sorted(p for p in Path("/sys/fs/cgroup").glob(f"*/{rel}/**") if p.is_dir() and p.name != rel)

    def cleanup(self) -> None:
        for proc in self.procs:
            kill_group(proc, signal.SIGKILL)
        kill_runc_containers(self.runc_root, list(self.runc_list()))
        kill_pid_files([*self.data_dir.glob("containers/*/conmon.pid"), self.data_dir / "wasm" / "host.pid"])
        unmount_all(self.mounts())
        remove_cgroup_trees(cgroup_tops(self.cgroup_parent))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "server", free_port(), tmp_path / "server.log")
    try:
        yield running
    finally:
        kill_group(running.process)


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT/test/busybox:1`` in a real Debian docker-registry: busybox-static FROM scratch."""
    with serve_busybox_image(tmp_path) as name:
        yield name


@pytest.fixture
def agent_env(tmp_path: Path, server: Server) -> Iterator[AgentEnv]:
    env = AgentEnv(tmp_path, server, tmp_path / "agent", tmp_path / "runc", f"/shoal-agent-test-{uuid.uuid4().hex[:8]}")
    try:
        yield env
    finally:
        env.cleanup()
