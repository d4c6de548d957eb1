"""Helpers shared by the benchmarks: start a server on loopback, percentiles, JSON output."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHOAL = [sys.executable, "-m", "shoal"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class BenchServer:
    url: str
    port: int
    config_path: Path
    token: str
    ca_pem: str
    process: subprocess.Popen[bytes]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)

    def http(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=timeout,
                            headers={"Authorization": f"Bearer {self.token}"})


@contextmanager
def running_server(extra: Sequence[str] = ()) -> Iterator[BenchServer]:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        data_dir = Path(tmp) / "server"
        port = free_port()
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen([*SHOAL, "server", "--data-dir", str(data_dir), "--port", str(port), *extra],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        try:
            config_path = data_dir / "admin.yaml"
            deadline = time.monotonic() + 30
            while not config_path.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start:\n" + (Path(tmp) / "server.log").read_text())
                time.sleep(0.05)
            config = yaml.safe_load(config_path.read_text())
            server = BenchServer(f"https://127.0.0.1:{port}", port, config_path, config["token"], config["ca"],
                                 process)
            while time.monotonic() < deadline:
                try:
                    with server.http(timeout=2) as http:
                        if http.get("/readyz").status_code == 200:
                            break
                except httpx.HTTPError:
                    time.sleep(0.05)
            yield server
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            log.close()


def write_json(path: str | None, result: dict[str, Any]) -> None:
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
