"""`make demo` end to end: ``examples/demo.sh up`` runs in a network namespace this test creates (so
the fleet's bridge never touches this machine's network) with its own state dir, registry port and
fleet name (so a developer's .demo is never touched). The printed tables show three nodes Online and
three Running pods spread over them, each node's runc runs its pod, the app answers through its
Service's name from inside a pod, a second ``up`` restarts nothing, and ``down`` leaves no process,
container, mount, cgroup, namespace or network device of the demo. Whatever the outcome,
everything the demo made is removed afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.hostclean import kill_runc_containers, remove_cgroup_trees, unmount_all

ROOT = Path(__file__).resolve().parents[3]
CGROUP_FS = Path("/sys/fs/cgroup")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Demo:
    state: Path
    name: str
    netns: Path
    env: dict[str, str]

    @property
    def run_dir(self) -> Path:
        return Path("/run/shoal/clusters") / self.name

    def sh(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the demo's network namespace with the demo's settings."""
        return subprocess.run(["nsenter", f"--net={self.netns}", *argv], capture_output=True, text=True,
                              timeout=timeout, env=self.env, cwd=ROOT)

    def demo(self, action: str) -> subprocess.CompletedProcess[str]:
        return self.sh("bash", "examples/demo.sh", action, timeout=170)

    def shoal(self, *args: str) -> Any:
        out = self.sh(str(ROOT / ".venv/bin/shoal"), "--config", str(self.state / "admin.yaml"), *args, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def runc_list(self, node: int) -> list[dict[str, Any]]:
        root = self.run_dir / f"node-{node}" / "runc"
        if not root.is_dir():
            return []
        out = subprocess.run(["runc", "--root", str(root), "list", "-f", "json"], capture_output=True, text=True,
                             timeout=30)
        found: list[dict[str, Any]] = json.loads(out.stdout or "[]") or []
        return found

    def processes(self) -> list[tuple[int, str]]:
        """Processes whose command line or environment names the demo's state or run dir."""
        marks = (str(self.state).encode(), str(self.run_dir).encode())
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes()
                environ = (proc / "environ").read_bytes()
                if any(m in cmdline or m in environ for m in marks):
                    found.append((int(proc.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
        return found

    def mounts(self) -> list[str]:
        prefixes = (f"{self.state}/", f"{self.run_dir}/", f"/run/netns/shoal-{self.name}-")
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return [p for p in (line.split()[4] for line in f) if p.startswith(prefixes)]

    def cgroups(self) -> list[Path]:
        return sorted(p for p in [*CGROUP_FS.glob(f"*/shoal-{self.name}-*"), *CGROUP_FS.glob(f"shoal-{self.name}-*")]
                      if p.is_dir())

    def namespaces(self) -> list[str]:
        return sorted(p.name for p in Path("/run/netns").glob(f"shoal-{self.name}-*"))

    def links(self) -> list[str]:
        out = self.sh("ip", "-o", "link", "show")
        return sorted(line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines())

    def cleanup(self) -> None:
        """Remove whatever the demo left, by the pids, names and paths it made, even after a failure."""
        for node in (1, 2, 3):
            kill_runc_containers(self.run_dir / f"node-{node}" / "runc", [c["id"] for c in self.runc_list(node)])
        for pid, _ in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        unmount_all(self.mounts())
        for netns in self.namespaces():
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, timeout=30)
        remove_cgroup_trees(self.cgroups())
        subprocess.run(["umount", "-l", str(self.netns)], capture_output=True, timeout=30)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    name = f"d{uuid.uuid4().hex[:6]}"
    netns = tmp_path / "netns"
    netns.touch()
    subprocess.run(["unshare", f"--net={netns}", "true"], check=True, timeout=30)
    env = {**os.environ, "SHOAL_DEMO_STATE": str(tmp_path / "s"), "SHOAL_DEMO_NAME": name,
           "SHOAL_DEMO_REGISTRY_PORT": str(_free_port()), "SHOAL_DEMO_WAIT": "90"}
    for leftover in ("SHOAL_CONFIG", "SHOAL_CLUSTER_ROOT", "SHOAL_IMAGE_ROOT"):
        env.pop(leftover, None)
    handle = Demo(tmp_path / "s", name, netns, env)
    handle.sh("ip", "link", "set", "lo", "up").check_returncode()
    try:
        yield handle
    finally:
        if handle.processes():
            handle.demo("down")
        handle.cleanup()


def _table(output: str, command: str) -> list[list[str]]:
    """The rows (header first) printed after the line that starts with ``$ COMMAND`` up to a blank line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"$ {command}")) + 1
    end = lines.index("", start)
    return [line.split() for line in lines[start:end]]


@pytest.mark.timeout(240)
def test_demo_runs_the_app_on_a_fleet_and_down_leaves_nothing(demo: Demo) -> None:
    up = demo.demo("up")
    assert up.returncode == 0, f"demo.sh up failed:\n{up.stdout}\n{up.stderr}"

    nodes = _table(up.stdout, "shoal get nodes -o wide")
    assert nodes[0][:2] == ["NAME", "STATUS"] and "ZONE" in nodes[0]
    assert sorted((r[0], r[1], r[5]) for r in nodes[1:]) == [(f"{demo.name}-{i}", "Online", "plant-a")
                                                            for i in (1, 2, 3)], nodes
    pods = _table(up.stdout, "shoal get pods -n plant-a -o wide")
    assert pods[0][:3] == ["NAME", "READY", "STATUS"] and pods[0][-1] == "NODE"
    assert len(pods) == 4 and all(re.fullmatch(r"sensor-gateway-\w+-\w+", r[0]) and r[1:3] == ["1/1", "Running"]
                                  for r in pods[1:]), pods
    assert {r[-1] for r in pods[1:]} == {f"{demo.name}-{i}" for i in (1, 2, 3)}, "one replica per node (Spread)"
    assert re.search(r"<h1>sensor-gateway on sensor-gateway-\w+-\w+</h1>", up.stdout), up.stdout  # via the Service
    assert "level=info sample_hz=10 rate=10" in up.stdout, up.stdout

    # Each pod's container is a runc container of its node's agent, running the image's script in that
    # node's cgroup parent.
    pids: dict[str, int] = {}
    for item in demo.shoal("get", "pods", "-n", "plant-a")["items"]:
        node = int(item["spec"]["nodeName"].rsplit("-", 1)[1])
        containers = {c["id"]: c for c in demo.runc_list(node)}
        cid = f"{item['metadata']['uid']}-gateway"
        assert set(containers) == {cid} and containers[cid]["status"] == "running", containers
        pid = containers[cid]["pid"]
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"/bin/sh", b"/app/serve.sh"]
        assert f"/shoal-{demo.name}-{node}" in Path(f"/proc/{pid}/cgroup").read_text()
        pids[cid] = pid

    again = demo.demo("up")
    assert again.returncode == 0, f"second up failed:\n{again.stdout}\n{again.stderr}"
    assert re.search(r"^registry\s+already running", again.stdout, re.M), again.stdout
    assert {c["id"]: c["pid"] for node in (1, 2, 3) for c in demo.runc_list(node)} == pids, \
        "a second up restarted containers"

    down = demo.demo("down")
    assert down.returncode == 0, f"demo.sh down failed:\n{down.stdout}\n{down.stderr}"
    assert demo.processes() == []
    assert all(demo.runc_list(node) == [] for node in (1, 2, 3)) and not demo.run_dir.exists()
    assert demo.mounts() == [] and demo.namespaces() == [] and demo.cgroups() == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert demo.links() == ["lo"]
    assert demo.sh("nft", "list", "tables").stdout.strip() == ""
    assert "rm -rf" in down.stdout
