"""e2e fixtures for the node agent: a shoal server that can be stopped and started again on the same
data dir and port, a loopback registry with busybox, and an agent environment (its own data dir,
runc root and cgroup parent). The helpers are the integration tests' ``agentenv``; everything is
removed afterwards, even on failure."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "agent"))

from agentenv import AgentEnv, Server, free_port, kill_group, serve_busybox_image, start_server


@dataclass
class Restartable:
    """The server process of one data dir and port, stopped and started as a test needs."""

    data_dir: Path
    port: int
    log_path: Path
    current: Server | None = None

    def start(self) -> Server:
        assert self.current is None or self.current.process.poll() is not None, "the server is running"
        self.current = start_server(self.data_dir, self.port, self.log_path)
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            kill_group(self.current.process)


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Restartable]:
    handle = Restartable(tmp_path / "server", free_port(), tmp_path / "server.log")
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    with serve_busybox_image(tmp_path) as name:
        yield name


@pytest.fixture
def agent_env(tmp_path: Path, restartable: Restartable) -> Iterator[AgentEnv]:
    assert restartable.current is not None
    env = AgentEnv(tmp_path, restartable.current, tmp_path / "agent", tmp_path / "runc",
                   f"/shoal-e2e-{uuid.uuid4().hex[:8]}")
    try:
        yield env
    finally:
        env.cleanup()
