"""Fixtures: a real Debian ``docker-registry`` on loopback (optionally with htpasswd auth) and a
busybox-static image built FROM scratch with shoal's own code."""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.tarballs import tar_of

USER, PASSWORD = "edge", "s3cret-pass"


@dataclass
class Registry:
    host: str
    root: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, auth: bool) -> tuple[subprocess.Popen[bytes], Registry]:
    port = _free_port()
    tmp.mkdir(parents=True)
    auth_cfg = ""
    if auth:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt

            hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        (tmp / "htpasswd").write_text(f"{USER}:{hashed}\n")
        auth_cfg = f"auth:\n  htpasswd:\n    realm: shoal-test\n    path: {tmp / 'htpasswd'}\n"
    config = tmp / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_cfg}"
    )
    log = tmp / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401):
                return proc, Registry(f"127.0.0.1:{port}", tmp, log)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[[bool], Registry]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(auth: bool = False) -> Registry:
        proc, reg = _start(tmp_path / f"registry{len(procs)}", auth)
        procs.append(proc)
        return reg

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def registry(start_registry: Callable[[bool], Registry]) -> Registry:
    return start_registry(False)


def busybox_layers() -> list[bytes]:
    """Three layers: busybox + /bin/sh; a file and a dir to delete; whiteouts removing them."""
    busybox = Path("/bin/busybox").read_bytes()
    return [
        tar_of(("bin", None, 0o755), ("bin/busybox", busybox, 0o755), ("bin/sh", "busybox", 0o777)),
        tar_of(
            ("etc", None, 0o755),
            ("etc/motd", b"hello\n", 0o644),
            ("etc/stale", b"old\n", 0o600),
            ("cache", None, 0o755),
            ("cache/a", b"a", 0o644),
        ),
        tar_of(("etc/.wh.stale", b"", 0o644), ("cache/.wh..wh..opq", b"", 0o644), ("cache/b", b"b", 0o644)),
    ]
