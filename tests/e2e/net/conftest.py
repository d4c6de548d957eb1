"""e2e fixtures for pod networking across nodes: a LAN namespace with a bridge, two node namespaces
wired to it by veth pairs (192.168.77.1 and .2; the LAN side answers as .254 for the server), a
server whose certificate names 192.168.77.254, a loopback registry with busybox, and one agent per
node namespace. The server and registry stay on this machine's loopback; in-process forwarders
carry them into the namespaces. Everything is removed afterwards, even on failure."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "agent"))

from agentenv import AgentEnv, Server, free_port, kill_group, serve_busybox_image, start_server
from netenv import Forwarder, in_netns, make_netns, remove_netns

LAN = "192.168.77"
GATEWAY = f"{LAN}.254"


@dataclass
class Fleet:
    server: Server
    image: str
    nodes: dict[str, AgentEnv]


def _run(netns: Path, *argv: str) -> None:
    done = in_netns(netns, *argv)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    tag = uuid.uuid4().hex[:6]
    port = free_port()
    namespaces: list[tuple[Path, tuple[str, ...]]] = []
    forwarders: list[Forwarder] = []
    envs: dict[str, AgentEnv] = {}
    server = start_server(tmp_path / "server", port, tmp_path / "server.log", "--tls-san", GATEWAY)
    try:
        with serve_busybox_image(tmp_path) as image:
            registry_port = int(image.split("/", 1)[0].rsplit(":", 1)[1])
            lan = make_netns(tmp_path / "lan")
            namespaces.append((lan, (f"lan{tag}",)))
            _run(lan, "ip", "link", "add", f"lan{tag}", "type", "bridge")
            _run(lan, "ip", "addr", "add", f"{GATEWAY}/24", "dev", f"lan{tag}")
            _run(lan, "ip", "link", "set", f"lan{tag}", "up")
            forwarders.append(Forwarder(lan, [port], GATEWAY))
            for i, name in enumerate(("node-a", "node-b"), start=1):
                netns = make_netns(tmp_path / f"{name}.netns")
                bridge = f"sh{tag}{i}"
                namespaces.append((netns, (bridge,)))
                _run(lan, "ip", "link", "add", f"p{tag}{i}", "type", "veth", "peer", "name", "eth0",
                     "netns", str(netns))
                _run(lan, "ip", "link", "set", f"p{tag}{i}", "master", f"lan{tag}", "up")
                _run(netns, "ip", "addr", "add", f"{LAN}.{i}/24", "dev", "eth0")
                _run(netns, "ip", "link", "set", "eth0", "up")
                forwarders.append(Forwarder(netns, [registry_port]))
                base = tmp_path / name
                base.mkdir()
                envs[name] = AgentEnv(base, server, base / "agent", base / "runc", f"/shoal-e2e-net-{tag}{i}",
                                      netns=netns, bridge=bridge, server_url=f"https://{GATEWAY}:{port}")
            yield Fleet(server, image, envs)
    finally:
        for env in envs.values():
            env.cleanup()
        for forwarder in forwarders:
            forwarder.close()
        for netns, links in reversed(namespaces):
            remove_netns(netns, *links)
        kill_group(server.process)
