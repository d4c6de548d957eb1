"""Fixtures for real agent tests: a shoal server with the join routes, a loopback registry holding
a busybox-static image built FROM scratch, and agent environments with their own data dir, runc
root and cgroup parent. Everything they start or create is removed afterwards, even on failure."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agentenv import APPLETS, ROOT, AgentEnv, Server, free_port, kill_group, wait_until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    data_dir, port = tmp_path / "server", free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "shoal", "server", "--data-dir",
                                 str(data_dir), "--port", str(port), "--log-level", "warning"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    running = Server(data_dir, port, proc, log_path)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"shoal server exited: {log_path.read_text()}")
            if not (data_dir / "admin.yaml").exists():
                return False
            with contextlib.suppress(httpx.HTTPError, OSError), running.http() as http:
                return http.get("/readyz").status_code == 200
            return False

        wait_until(ready, 30, "the shoal server", 0.1)
        yield running
    finally:
        kill_group(proc)


def _tar(entries: list[tuple[str, bytes | str | None, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 1_600_000_000
            if payload is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(payload, str):
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT/test/busybox:1`` in a real Debian docker-registry: busybox-static FROM scratch."""
    from shoal.image.assemble import create_image
    from shoal.image.content import ContentStore
    from shoal.image.pull import push_image
    from shoal.image.reference import parse_reference

    port, root = free_port(), tmp_path / "registry"
    root.mkdir()
    config = root / "config.yml"
    config.write_text("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200
            return False

        wait_until(up, 15, "docker-registry")
        entries: list[tuple[str, bytes | str | None, int]] = [("bin", None, 0o755),
                                                              ("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)]
        entries += [(f"bin/{a}", "busybox", 0o777) for a in APPLETS]
        entries += [(d, None, 0o755) for d in ("proc", "sys", "dev", "tmp", "etc")]
        name = f"127.0.0.1:{port}/test/busybox:1"
        store = ContentStore(tmp_path / "build-store")
        create_image(store, name, [_tar(entries)], config={"Cmd": ["sleep", "3600"]})
        asyncio.run(push_image(store, name, parse_reference(name)))
        yield name
    finally:
        kill_group(proc)


@pytest.fixture
def agent_env(tmp_path: Path, server: Server) -> Iterator[AgentEnv]:
    env = AgentEnv(tmp_path, server, tmp_path / "agent", tmp_path / "runc", f"/shoal-agent-test-{uuid.uuid4().hex[:8]}")
    try:
        yield env
    finally:
        env.cleanup()
