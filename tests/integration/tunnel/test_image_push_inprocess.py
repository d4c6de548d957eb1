"""Image push to a node, server side, in one process: the real API app under uvicorn on loopback, the
test playing the node's agent with the node's own token. The archive is spooled to a temp file that
only the node it is addressed to may fetch (403 for any other node's token, and for the admin's),
the file is gone once the node took it, the node's answer reaches the user, and uploads past the
server's limit, or for a node whose agent is away, are refused with a clear Status and leave nothing."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_tunnel_inprocess import FollowingDriver, _scenario

from shoal.agent.tunnel import NodeTunnel
from shoal.api.tunnel import TunnelHub

LIMIT = 64 << 10
IMAGES = "/api/v1/nodes/{}/images"


def _as(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


async def _next_frame(lines: AsyncIterator[str]) -> dict[str, str]:
    for _ in range(10):
        frame: dict[str, str] = json.loads(await asyncio.wait_for(anext(lines), 10))
        if frame["op"] != "ping":
            return frame
    raise AssertionError("no request frame came down the tunnel")


def test_only_the_addressed_node_fetches_and_the_spool_is_cleaned(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("SHOAL_IMAGE_PUSH_MAX_BYTES", str(LIMIT))
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    archive = bytes(range(256)) * 200  # 50 KiB, under the limit

    async def body(http: httpx.AsyncClient, hub: TunnelHub, tunnel: NodeTunnel, driver: FollowingDriver,
                   stop: asyncio.Event, group: asyncio.TaskGroup, url: str) -> None:
        for node in ("gw-1", "gw-2"):
            made = await http.post("/api/v1/nodes", json={"apiVersion": "shoal/v1", "kind": "Node",
                                                          "metadata": {"name": node}})
            assert made.status_code == 201, made.text
        away = await http.post(IMAGES.format("gw-1"), content=archive)
        assert away.status_code == 503 and "gw-1 has no tunnel open" in away.json()["message"]
        unknown = await http.post(IMAGES.format("gw-9"), content=archive)
        assert unknown.status_code == 404
        async with _as(url, "gw1-token") as node1, _as(url, "gw2-token") as node2, \
                node1.stream("GET", "/api/v1/nodes/gw-1/tunnel", timeout=httpx.Timeout(10, read=30)) as stream:
            lines = stream.aiter_lines()
            push = asyncio.create_task(http.post(IMAGES.format("gw-1"), params={"image": "shoal.test/app:1"},
                                                 content=archive, timeout=30))
            frame = await _next_frame(lines)
            assert (frame["op"], frame["image"]) == ("image-load", "shoal.test/app:1")
            fetch = f"{IMAGES.format('gw-1')}/{frame['upload']}"
            [spooled] = list(spool.iterdir())
            assert spooled.read_bytes() == archive

            other = await node2.get(fetch)
            assert other.status_code == 403 and "only node gw-1's own credentials" in other.json()["message"]
            sideways = await node2.get(f"{IMAGES.format('gw-2')}/{frame['upload']}")
            assert sideways.status_code == 403 and "addressed to another node" in sideways.json()["message"]
            assert (await http.get(fetch)).status_code == 403  # the admin is not a node either
            assert (await node2.post(IMAGES.format("gw-1"), content=b"x")).status_code == 403

            taken = await node1.get(fetch)
            assert (taken.status_code, taken.content) == (200, archive)
            assert list(spool.iterdir()) == []  # gone once the node took it
            again = await node1.get(fetch)
            assert again.status_code == 404

            answer = await node1.post(f"/api/v1/nodes/gw-1/tunnel/{frame['id']}",
                                      content=b'{"fetched": 51200}\n{"loaded": ["shoal.test/app:1"]}\n',
                                      headers={"X-Shoal-Status": "200", "Content-Type": "application/x-ndjson"})
            assert answer.status_code == 204
            pushed = await push
            assert pushed.status_code == 200
            assert json.loads(pushed.text.splitlines()[-1]) == {"loaded": ["shoal.test/app:1"]}

            too_big = await http.post(IMAGES.format("gw-1"), content=b"\0" * (LIMIT + 1))
            assert too_big.status_code == 413
            assert "at most 64.0 KiB" in too_big.json()["message"]
            assert "SHOAL_IMAGE_PUSH_MAX_BYTES" in too_big.json()["message"]

            async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: refused while it arrives
                for _ in range(10):
                    yield b"\0" * (16 << 10)

            streamed = await http.post(IMAGES.format("gw-1"), content=chunked())
            assert streamed.status_code == 413 and "this server takes at most" in streamed.json()["message"]
            empty = await http.post(IMAGES.format("gw-1"), content=b"")
            assert empty.status_code == 400 and "body is empty" in empty.json()["message"]
            assert list(spool.iterdir()) == []

    asyncio.run(_scenario(tmp_path, body))
