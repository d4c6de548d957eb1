"""`make demo` end to end: ``examples/demo.sh up`` runs in a network namespace this test creates
(so the agent's bridge and nftables table never touch this machine's network) with its own state
dir, ports, runc state dir and cgroup parent (so a developer's .demo is never touched). The printed
tables show three Running pods on the real node, runc runs their containers, a second ``up``
restarts nothing, and ``down`` leaves no process, container, mount, cgroup or network device of
the demo. Whatever the outcome, everything the demo made is removed afterwards."""

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

ROOT = Path(__file__).resolve().parents[3]
NODE = "demo-e2e"
CGROUP_FS = Path("/sys/fs/cgroup")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Demo:
    state: Path
    run_dir: Path
    cgroup_parent: str
    netns: Path
    env: dict[str, str]

    def sh(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the demo's network namespace with the demo's settings."""
        return subprocess.run(["nsenter", f"--net={self.netns}", *argv], capture_output=True, text=True,
                              timeout=timeout, env=self.env, cwd=ROOT)

    def demo(self, action: str) -> subprocess.CompletedProcess[str]:
        return self.sh("bash", "examples/demo.sh", action, timeout=150)

    def shoal(self, *args: str) -> Any:
        config = self.state / "server" / "admin.yaml"
        out = self.sh(str(ROOT / ".venv/bin/shoal"), "--config", str(config), *args, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def runc_list(self) -> list[dict[str, Any]]:
        if not (self.run_dir / "runc").is_dir():
            return []
        out = subprocess.run(["runc", "--root", str(self.run_dir / "runc"), "list", "-f", "json"],
                             capture_output=True, text=True, timeout=30)
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
        prefixes = (f"{self.state}/", f"{self.run_dir}/")
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return [p for p in (line.split()[4] for line in f) if p.startswith(prefixes)]

    def cgroups(self) -> list[Path]:
        rel = self.cgroup_parent.strip("/")
        return sorted(p for p in [*CGROUP_FS.glob(f"*/{rel}"), CGROUP_FS / rel] if p.is_dir())

    def links(self) -> list[str]:
        out = self.sh("ip", "-o", "link", "show")
        return sorted(line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines())

    def cleanup(self) -> None:
        """Remove whatever the demo left, by the pids, ids and paths it made, even after a failure."""
        for cid in [c["id"] for c in self.runc_list()]:
            runc = ["runc", "--root", str(self.run_dir / "runc")]
            subprocess.run([*runc, "kill", "--all", cid, "KILL"], capture_output=True, timeout=30)
            subprocess.run([*runc, "delete", "--force", cid], capture_output=True, timeout=30)
        for pid, _ in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in sorted(self.mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
        for top in self.cgroups():
            for d in sorted((p for p in top.glob("**") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
        subprocess.run(["umount", "-l", str(self.netns)], capture_output=True, timeout=30)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    tag = uuid.uuid4().hex[:8]
    netns = tmp_path / "netns"
    netns.touch()
    subprocess.run(["unshare", f"--net={netns}", "true"], check=True, timeout=30)
    env = {**os.environ, "SHOAL_DEMO_STATE": str(tmp_path / "s"), "SHOAL_DEMO_PORT": str(_free_port()),
           "SHOAL_DEMO_REGISTRY_PORT": str(_free_port()), "SHOAL_DEMO_RUN_DIR": f"/run/shoal-demo-{tag}",
           "SHOAL_DEMO_CGROUP_PARENT": f"/shoal-demo-{tag}", "SHOAL_DEMO_NODE": NODE, "SHOAL_DEMO_WAIT": "90"}
    env.pop("SHOAL_CONFIG", None)
    handle = Demo(tmp_path / "s", Path(env["SHOAL_DEMO_RUN_DIR"]), env["SHOAL_DEMO_CGROUP_PARENT"], netns, env)
    handle.sh("ip", "link", "set", "lo", "up").check_returncode()
    try:
        yield handle
    finally:
        if handle.processes():
            handle.demo("down")
        handle.cleanup()


def _table(output: str, command: str) -> list[list[str]]:
    """The rows (header first) printed after ``$ COMMAND`` up to the next blank line."""
    lines = output.splitlines()
    start = lines.index(f"$ {command}") + 1
    end = lines.index("", start)
    return [line.split() for line in lines[start:end]]


@pytest.mark.timeout(180)
def test_demo_runs_the_app_under_runc_and_down_leaves_nothing(demo: Demo) -> None:
    up = demo.demo("up")
    assert up.returncode == 0, f"demo.sh up failed:\n{up.stdout}\n{up.stderr}"

    nodes = _table(up.stdout, "shoal get nodes -o wide")
    assert nodes[0][:2] == ["NAME", "STATUS"] and "ZONE" in nodes[0]
    assert [row for row in nodes[1:] if row[0] == NODE and row[1] == "Online" and "plant-a" in row], nodes
    pods = _table(up.stdout, "shoal get pods -n plant-a -o wide")
    assert pods[0][:3] == ["NAME", "READY", "STATUS"] and pods[0][-1] == "NODE"
    assert len(pods) == 4 and all(re.fullmatch(r"sensor-gateway-\w+-\w+", r[0]) and r[1:3] == ["1/1", "Running"]
                                  and r[-1] == NODE for r in pods[1:]), pods
    assert "level=info sample_hz=10 rate=10" in up.stdout, up.stdout

    # The three pods' containers are runc containers of the agent, running the image's script in
    # the demo's cgroup parent.
    items = demo.shoal("get", "pods", "-n", "plant-a")["items"]
    expected = {f"{p['metadata']['uid']}-gateway" for p in items}
    containers = {c["id"]: c for c in demo.runc_list()}
    assert len(expected) == 3 and set(containers) == expected, (expected, containers)
    assert {c["status"] for c in containers.values()} == {"running"}
    for c in containers.values():
        assert Path(f"/proc/{c['pid']}/cmdline").read_bytes().split(b"\0")[:2] == [b"/bin/sh", b"/app/serve.sh"]
        assert demo.cgroup_parent in Path(f"/proc/{c['pid']}/cgroup").read_text()
    pids = {cid: c["pid"] for cid, c in containers.items()}

    again = demo.demo("up")
    assert again.returncode == 0, f"second up failed:\n{again.stdout}\n{again.stderr}"
    for what in ("registry", "server", "agent"):
        assert re.search(rf"^{what}\s+already running", again.stdout, re.M), again.stdout
    assert {c["id"]: c["pid"] for c in demo.runc_list()} == pids, "a second up restarted containers"

    down = demo.demo("down")
    assert down.returncode == 0, f"demo.sh down failed:\n{down.stdout}\n{down.stderr}"
    assert "warning" not in down.stdout, down.stdout
    assert demo.processes() == []
    assert demo.runc_list() == [] and not demo.run_dir.exists()
    assert demo.mounts() == []
    assert demo.cgroups() == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert demo.links() == ["lo"]
    assert demo.sh("nft", "list", "tables").stdout.strip() == ""
    assert "rm -rf" in down.stdout
