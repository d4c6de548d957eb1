"""e2e fixtures for a local fleet made by the CLI as a user makes it: `shoal cluster up --nodes 3`
(a server and three agents, each in its own named network namespace on a shared bridge), a
loopback registry with busybox that the nodes reach through the server's registry mirror, and
`shoal cluster down` afterwards, which must leave nothing of the fleet behind (checked)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "agent"))

from agentenv import serve_busybox_image

from shoal.fleet.layout import FleetLayout
from tests.conftest import SHOAL


@dataclass
class Fleet:
    name: str
    root: Path
    config: Path
    image: str
    layout: FleetLayout

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SHOAL, "--config", str(self.config), *args], capture_output=True, text=True,
                              timeout=timeout)

    def http(self) -> httpx.Client:
        import ssl

        config = yaml.safe_load(self.config.read_text())
        return httpx.Client(base_url=config["server"], verify=ssl.create_default_context(cadata=config["ca"]),
                            headers={"Authorization": f"Bearer {config['token']}"}, timeout=10)


def leftovers(fleet: FleetLayout) -> dict[str, list[str]]:
    """What of ``fleet`` exists on this machine: namespaces, links, mounts, cgroups, processes."""
    netns = sorted(p.name for p in Path("/run/netns").glob("*")) if Path("/run/netns").is_dir() else []
    links = [link["ifname"] for link in json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True,
                                                                  text=True, check=True).stdout)]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    cgroups = [str(p) for n in fleet.nodes for p in Path("/sys/fs/cgroup").glob(f"*{n.cgroup_parent}")]
    procs = subprocess.run(["pgrep", "-af", fleet.state_dir], capture_output=True, text=True).stdout.splitlines()
    return {
        "netns": [n for n in netns if n in {node.netns for node in fleet.nodes}],
        "links": [n for n in links if n == fleet.bridge or n in {node.veth for node in fleet.nodes}],
        "mounts": [m for m in mounts if fleet.state_dir in m or fleet.run_dir in m],
        "cgroups": cgroups,
        "processes": [p for p in procs if "pgrep" not in p],
        "dirs": [d for d in (fleet.state_dir, fleet.run_dir) if Path(d).exists()],
    }


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    name = f"e2e{uuid.uuid4().hex[:6]}"
    root, config = tmp_path / "clusters", tmp_path / "admin.yaml"
    with serve_busybox_image(tmp_path) as image:
        layout: FleetLayout | None = None
        try:
            up = subprocess.run([*SHOAL, "cluster", "up", "--nodes", "3", "--name", name, "--root", str(root),
                                 "--config", str(config)], capture_output=True, text=True, timeout=180)
            if (root / name / "fleet.json").exists():
                layout = FleetLayout.load(root / name)
            assert up.returncode == 0, up.stdout + up.stderr
            assert layout is not None
            yield Fleet(name, root, config, image, layout)
        finally:
            down = subprocess.run([*SHOAL, "cluster", "down", "--name", name, "--root", str(root)],
                                  capture_output=True, text=True, timeout=300)
            if layout is not None:
                assert down.returncode == 0, down.stdout + down.stderr
                left = leftovers(layout)
                assert not any(left.values()), f"shoal cluster down left {left}"
