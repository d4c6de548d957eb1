"""Edge facts on a real agent: TCP listeners on 127.0.0.2 and 127.0.0.3 stand in for two zones'
probe targets; the node's measured RTTs (and 0 ms for its own zone) appear in `shoal get node -o json`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from agentenv import AgentEnv, Server, wait_until


@pytest.fixture
def zone_listeners() -> Iterator[dict[str, int]]:
    sockets: list[socket.socket] = []
    try:
        ports = {}
        for zone, address in (("plant-b", "127.0.0.2"), ("cloud", "127.0.0.3")):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind((address, 0))
            sock.listen(64)
            ports[zone] = sock.getsockname()[1]
        yield ports
    finally:
        for sock in sockets:
            sock.close()


def test_node_reports_rtt_to_each_zone(agent_env: AgentEnv, server: Server, zone_listeners: dict[str, int]) -> None:
    agent_env.start("--labels", "shoal.io/zone=plant-a",
                    "--zone-probe", f"plant-b=127.0.0.2:{zone_listeners['plant-b']}",
                    "--zone-probe", f"cloud=127.0.0.3:{zone_listeners['cloud']}",
                    "--zone-probe", "gone=127.0.0.4:1", token=server.join_token)

    def rtts() -> dict[str, Any]:
        out = server.cli("get", "node", "edge-1", "-o", "json")
        if out.returncode != 0:
            return {}
        found: dict[str, Any] = json.loads(out.stdout)["status"].get("rttMs") or {}
        return found

    measured = wait_until(rtts, 30, "status.rttMs on the node", 0.2)
    assert set(measured) == {"plant-a", "plant-b", "cloud"}, measured  # the unreachable zone is left out
    assert measured["plant-a"] == 0.0
    assert 0 < measured["plant-b"] < 50 and 0 < measured["cloud"] < 50
    with server.http() as http:
        node = http.get("/api/v1/nodes/edge-1").json()
    assert node["status"]["capacity"]["pods"] == "110"  # the patch kept what registration wrote


def test_a_malformed_zone_probe_is_refused_with_the_fix(agent_env: AgentEnv, server: Server) -> None:
    proc = agent_env.start("--zone-probe", "cloud=nowhere", token=server.join_token)
    assert proc.wait(timeout=30) == 2
    logs = agent_env.logs()
    assert '--zone-probe "cloud=nowhere" is not ZONE=HOST:PORT' in logs and "Traceback" not in logs
