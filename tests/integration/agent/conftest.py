"""Fixtures for real agent tests: a shoal server with the join routes, a loopback registry holding
a busybox-static image built FROM scratch, and agent environments with their own data dir, runc
root and cgroup parent. Everything they start or create is removed afterwards, even on failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentenv import AgentEnv, Server, agent_env, image, server  # noqa: F401 - shared fixtures
from netenv import Forwarder, host_netns


@pytest.fixture
def net_env(tmp_path: Path, server: Server, image: str) -> Iterator[AgentEnv]:  # noqa: F811 - the fixtures
    """An agent with pod networking, run in its own network namespace (its own bridge, nft table,
    routes and sysctls); the server and registry are forwarded into it on the same loopback ports."""
    bridge = f"sh{uuid.uuid4().hex[:8]}"
    registry_port = int(image.split("/", 1)[0].rsplit(":", 1)[1])
    with host_netns(tmp_path / "hostns", bridge) as netns:
        forwarder = Forwarder(netns, [server.port, registry_port])
        env = AgentEnv(tmp_path, server, tmp_path / "agent", tmp_path / "runc",
                       f"/shoal-net-test-{uuid.uuid4().hex[:8]}", netns=netns, bridge=bridge)
        try:
            yield env
        finally:
            env.cleanup()
            forwarder.close()
