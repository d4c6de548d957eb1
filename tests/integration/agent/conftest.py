"""Fixtures for real agent tests: a shoal server with the join routes, a loopback registry holding
a busybox-static image built FROM scratch, and agent environments with their own data dir, runc
root and cgroup parent. Everything they start or create is removed afterwards, even on failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentenv import AgentEnv, Server, free_port, kill_group, serve_busybox_image, start_server


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
