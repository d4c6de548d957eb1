"""kill -9 of the server in the middle of 1,000 concurrent creates loses no acknowledged write."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
from tests.conftest import RunningServer, start_server, stop_process

PODS = "/api/v1/namespaces/default/pods"
KILL_AFTER = 300


def _pod(i: int) -> dict[str, object]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": f"p-{i:04d}"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1"}]}}  # the scheduler skips it


async def _create_until_killed(server: RunningServer, acked: dict[str, int]) -> None:
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context(), headers=headers,
                                 limits=limits, timeout=10) as http:
        async def one(i: int) -> None:
            try:
                response = await http.post(PODS, json=_pod(i))
            except httpx.HTTPError:
                return
            if response.status_code == 201:
                acked[f"p-{i:04d}"] = int(response.json()["metadata"]["resourceVersion"])
                if len(acked) >= KILL_AFTER and server.process.poll() is None:
                    server.process.send_signal(signal.SIGKILL)  # mid-flight: hundreds still in the air

        await asyncio.gather(*(one(i) for i in range(1000)))


def test_acknowledged_creates_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    first = start_server(data_dir)
    acked: dict[str, int] = {}
    try:
        asyncio.run(_create_until_killed(first, acked))
    finally:
        if len(acked) >= KILL_AFTER:
            first.process.wait(timeout=30)
        stop_process(first.process)
    assert len(acked) >= KILL_AFTER, f"only {len(acked)} creates were acknowledged:\n{first.log()[-3000:]}"
    assert first.process.returncode == -signal.SIGKILL
    second = start_server(data_dir, port=first.port)
    try:
        with second.http() as http:
            listed = http.get(PODS).json()
            stored = {item["metadata"]["name"]: int(item["metadata"]["resourceVersion"])
                      for item in listed["items"]}
            lost = sorted(set(acked) - set(stored))
            assert not lost, f"{len(lost)} acknowledged creates were lost, e.g. {lost[:5]}"
            assert all(stored[name] == rv for name, rv in acked.items())
            latest = int(listed["metadata"]["resourceVersion"])
            assert latest >= max(acked.values())
            created = http.post(PODS, json=_pod(5000)).json()
            assert int(created["metadata"]["resourceVersion"]) > latest
            since = min(acked.values())
            with http.stream("GET", f"/api/v1/watch{PODS[7:]}", params={"resourceVersion": str(since)}) as stream:
                first_line = json.loads(next(stream.iter_lines()))
            # the retained log replays from there, or the server says 410 so the client re-lists
            assert first_line["type"] in ("ADDED", "ERROR")
            if first_line["type"] == "ERROR":
                assert first_line["object"]["code"] == 410
            else:
                assert int(first_line["object"]["metadata"]["resourceVersion"]) > since
    finally:
        stop_process(second.process)
