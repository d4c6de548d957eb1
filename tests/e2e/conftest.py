"""e2e fixtures: hollow-node fleets next to a real server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import SHOAL, RunningServer, stop_process

SimFactory = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def sim(server: RunningServer) -> Iterator[SimFactory]:
    started: list[subprocess.Popen[bytes]] = []

    def start(count: int, prefix: str = "sim", zones: str = "a,b,c", cpu: str = "4", memory: str = "8Gi"
              ) -> subprocess.Popen[bytes]:
        log = open(server.data_dir.parent / f"sim-{prefix}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([*SHOAL, "--config", str(server.config_path), "sim", "nodes", "--count",
                                    str(count), "--prefix", prefix, "--zones", zones, "--cpu", cpu,
                                    "--memory", memory], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            stop_process(process)
