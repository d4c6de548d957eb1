"""Shared fixtures: a real shoal server process on loopback with its own data dir."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHOAL = [sys.executable, "-m", "shoal"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "admin.yaml"

    @property
    def token(self) -> str:
        return str(yaml.safe_load(self.config_path.read_text())["token"])

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=yaml.safe_load(self.config_path.read_text())["ca"])

    def http(self, token: str | None = "admin", timeout: float = 10.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token if token == 'admin' else token}"} if token else {}
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), headers=headers, timeout=timeout)

    def cli(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SHOAL, "--config", str(self.config_path), *args], capture_output=True, text=True,
                              input=input, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def start_server(data_dir: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> RunningServer:
    port = port or free_port()
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([*SHOAL, "server", "--data-dir", str(data_dir), "--port", str(port),
                                    "--log-level", "info", *extra],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    server = RunningServer(data_dir, port, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"shoal server exited with {process.returncode}:\n{server.log()}")
        if server.config_path.exists():
            try:
                with server.http(token=None, timeout=2) as http:
                    if http.get("/readyz").status_code == 200:
                        return server
            except (httpx.HTTPError, ssl.SSLError, OSError):
                pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"shoal server did not become ready:\n{server.log()}")


def join_node(server: RunningServer, node: str) -> str:
    """A node token, obtained the way an agent gets one: the join token's secret and a CSR."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)])).sign(key, hashes.SHA256()))
    secret = (server.data_dir / "node-token").read_text().strip().split("::", 1)[1]
    with server.http(token=secret) as http:
        joined = http.post("/api/v1/join", json={"nodeName": node, "csr": csr.public_bytes(
            serialization.Encoding.PEM).decode()})
    assert joined.status_code == 200, joined.text
    return str(joined.json()["token"])


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / "server")
    try:
        yield running
    finally:
        stop_process(running.process)


def wait_for(predicate: object, timeout: float = 20.0, interval: float = 0.1, message: str = "") -> None:
    """Poll ``predicate()`` until it is truthy; fail with ``message`` after ``timeout``."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message} (last value: {last!r})")
