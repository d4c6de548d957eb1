"""`shoal image push IMAGE --node NODE` as a user types it, for an air-gapped node: an image that exists
only in the CLI's own store (in no registry at all) reaches a real agent through a real server, and
a pod with `imagePullPolicy: Never` runs it under runc. Nothing is left in the server's spool or beside
the agent's image store, and an archive past the server's limit is refused with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentenv import APPLETS, ROOT, AgentEnv, Server, wait_until
from tests.tarballs import tar_of

from shoal.image.assemble import create_image
from shoal.image.content import ContentStore

IMAGE = "shoal.test/airgap/hello:1"  # a registry that does not exist: only `push --node` can deliver it


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The server's temp dir (it spools uploads there) and its push limit; set before the server starts."""
    path = tmp_path / "spool"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setenv("SHOAL_IMAGE_PUSH_MAX_BYTES", str(8 << 20))
    yield path


def _cli_store(root: Path, name: str, payload: bytes = b"") -> None:
    entries: list[tuple[str, bytes | str | None, int]] = [("bin", None, 0o755),
                                                          ("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)]
    entries += [(f"bin/{a}", "busybox", 0o777) for a in APPLETS]
    entries += [(d, None, 0o755) for d in ("proc", "sys", "dev", "tmp", "etc")]
    entries += [("etc/greeting", b"hello from an air-gapped push\n", 0o644)]
    if payload:
        entries += [("blob", payload, 0o644)]
    create_image(ContentStore(root), name, [tar_of(*entries)], config={"Cmd": ["sleep", "3600"]})


def _push(server: Server, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shoal", "--config", str(server.data_dir / "admin.yaml"), "image",
                           "push", *args, "--root", str(root)], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _pod(image: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "airgap"},
            "spec": {"nodeName": "edge-1", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", "cat /etc/greeting; exec sleep 300"]}]}}


def test_push_to_node_then_run_without_a_registry(spool: Path, agent_env: AgentEnv, server: Server,
                                                  tmp_path: Path) -> None:
    agent_env.start(token=server.join_token)
    root = tmp_path / "cli-store"
    _cli_store(root, IMAGE)
    with server.http() as http:
        wait_until(lambda: server.cli("get", "node", "edge-1").returncode == 0, 60, "the node to register", 0.2)

        def pushed() -> subprocess.CompletedProcess[str] | None:
            result = _push(server, root, IMAGE, "--node", "edge-1")
            return result if "has no tunnel open" not in result.stderr else None

        result = wait_until(pushed, 30, "the agent's tunnel", 0.5)
        assert result.returncode == 0, result.stderr
        assert f"{IMAGE}: loaded on node edge-1" in result.stdout
        assert list(spool.iterdir()) == []  # the server's copy is gone once the node took it
        assert not list((agent_env.data_dir / "images").glob(".pushed-*"))

        assert http.post("/api/v1/namespaces/default/pods", json=_pod(IMAGE)).status_code == 201
        wait_until(lambda: http.get("/api/v1/namespaces/default/pods/airgap").json()
                   .get("status", {}).get("phase") in ("Running", "Failed"), 60, "the pod to start", 0.1)
        status = http.get("/api/v1/namespaces/default/pods/airgap").json()["status"]
        assert status["phase"] == "Running", status
        wait_until(lambda: "hello from an air-gapped push" in server.cli("logs", "airgap").stdout, 30,
                   "the pod's output", 0.2)

        big = "shoal.test/airgap/big:1"
        _cli_store(root, big, payload=os.urandom(12 << 20))  # 12 MiB, past the 8 MiB limit
        refused = _push(server, root, big, "--node", "edge-1")
        assert refused.returncode == 1, refused
        assert "this server takes at most 8.0 MiB" in refused.stderr
        assert "SHOAL_IMAGE_PUSH_MAX_BYTES" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert list(spool.iterdir()) == []

        unknown = _push(server, root, IMAGE, "--node", "edge-9")
        assert unknown.returncode == 1 and "edge-9" in unknown.stderr and "Traceback" not in unknown.stderr
