"""Fixtures for real tunnel tests: a shoal server, a loopback registry with busybox-static, and an
agent environment (own data dir, runc root, cgroup parent), all from the agent tests' helpers and
all removed afterwards, even on failure."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))

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
    with serve_busybox_image(tmp_path) as name:
        yield name


@pytest.fixture
def agent_env(tmp_path: Path, server: Server) -> Iterator[AgentEnv]:
    cgroup_parent = f"/shoal-tunnel-test-{uuid.uuid4().hex[:8]}"
    env = AgentEnv(tmp_path, server, tmp_path / "agent", tmp_path / "runc", cgroup_parent)
    try:
        yield env
    finally:
        env.cleanup()
