"""Fixtures for real agent tests: a shoal server with the join routes, a loopback registry holding
a busybox-static image built FROM scratch, and agent environments with their own data dir, runc
root and cgroup parent. Everything they start or create is removed afterwards, even on failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentenv import AgentEnv, Server, free_port, kill_group, serve_busybox_image, start_server
from netenv import Forwarder, host_netns


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


@pytest.fixture
def net_env(tmp_path: Path, server: Server, image: str) -> Iterator[AgentEnv]:
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
