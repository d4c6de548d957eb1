"""The tunnel end to end in one process: the real API app under uvicorn on loopback, the real
agent-side ``NodeTunnel`` dialling it with a node token, and an in-memory runtime. Users see logs,
exec output and exit codes, Status errors for every miss, and their going away stops the node's work."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from shoal.agent.podspec import container_id
from shoal.agent.tunnel import NodeTunnel
from shoal.api.routes import create_app
from shoal.api.tunnel import TunnelHub, tunnel_routes
from shoal.client import ClientConfig
from shoal.client.stream import Channel, FrameDecoder
from shoal.model import Namespace, ObjectMeta
from shoal.runtime import ContainerSpec, ExecResult, FakeDriver, LogLine
from shoal.store import SqliteStore

TOKENS = {"admin-token": "admin", "gw1-token": "node:gw-1", "gw2-token": "node:gw-2"}
PODS = "/api/v1/namespaces/default/pods"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FollowingDriver(FakeDriver):
    """The fake runtime, plus a follow that ticks until the reader goes away (and records that)."""

    def __init__(self) -> None:
        super().__init__(exec_handler=self._exec_handler)
        self.follow_closed = asyncio.Event()
        self.exec_calls: list[tuple[str, ...]] = []

    def _exec_handler(self, cid: str, argv: Sequence[str]) -> ExecResult:
        self.exec_calls.append(tuple(argv))
        return ExecResult(exit_code=3, stdout=b"hi\n", stderr=b"oops\n")

    async def logs(self, container_id: str, tail: int | None = None, follow: bool = False) -> AsyncIterator[LogLine]:
        async for line in super().logs(container_id, tail, follow):
            yield line
        if follow:
            try:
                for i in range(500):
                    await asyncio.sleep(0.02)
                    yield LogLine("2026-01-01T00:00:00Z", "stdout", False, f"tick {i}")
            finally:
                self.follow_closed.set()


async def _scenario(tmp_path: Path, body: Any) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    hub = TunnelHub()
    asgi, _ = create_app(store, TOKENS.get, lambda names: None, lambda: dt.datetime.now(dt.UTC),
                         extra_routes=tunnel_routes(hub))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    url = f"http://127.0.0.1:{port}"
    driver = FollowingDriver()
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(server.serve())
            for _ in range(200):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            tunnel = NodeTunnel("gw-1", ClientConfig(server=url, token="gw1-token"), driver, tmp_path / "pods")
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer admin-token"},
                                         timeout=10) as http:
                try:
                    await body(http, hub, tunnel, driver, stop, group, url)
                finally:
                    stop.set()
                    server.should_exit = True
    finally:
        await store.close()


async def _pod(http: httpx.AsyncClient, name: str, node: str = "gw-1", containers: Sequence[str] = ("app",)) -> str:
    manifest = {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": node, "containers": [{"name": c, "image": "busybox:1"} for c in containers]}}
    created = await http.post(PODS, json=manifest)
    assert created.status_code == 201, created.text
    return str(created.json()["metadata"]["uid"])


async def _container(driver: FakeDriver, uid: str, name: str, start: bool = True) -> str:
    cid = container_id(uid, name)
    await driver.create(ContainerSpec(id=cid, name=name, pod_uid=uid, pod_name="web"))
    if start:
        await driver.start(cid)
    return cid


async def _wait_connected(hub: TunnelHub, node: str) -> None:
    for _ in range(200):
        if hub.connected(node):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{node} never opened its tunnel")


def test_logs_and_errors_through_the_tunnel(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, hub: TunnelHub, tunnel: NodeTunnel, driver: FollowingDriver,
                   stop: asyncio.Event, group: asyncio.TaskGroup, url: str) -> None:
        uid = await _pod(http, "web", containers=("app", "side"))
        cid = await _container(driver, uid, "app")
        for i in range(5):
            driver.write_log(cid, f"line {i}")
        offline = await http.get(f"{PODS}/web/log")
        assert offline.status_code == 503
        assert offline.json()["message"] == "node gw-1 has no tunnel open (is its agent running?)"

        group.create_task(tunnel.run(stop))
        await _wait_connected(hub, "gw-1")
        full = await http.get(f"{PODS}/web/log")
        assert full.status_code == 200 and full.text == "".join(f"line {i}\n" for i in range(5))
        assert full.headers["content-type"].startswith("text/plain")
        tail = await http.get(f"{PODS}/web/log", params={"tailLines": "2", "container": "app"})
        assert tail.text == "line 3\nline 4\n"

        errors = {
            "missing pod": (await http.get(f"{PODS}/nope/log"), 404, 'pod "nope" not found'),
            "missing container": (await http.get(f"{PODS}/web/log", params={"container": "db"}), 404,
                                  'container "db" not found in pod "web"; its containers are app, side'),
            "not started": (await http.get(f"{PODS}/web/log", params={"container": "side"}), 400,
                            'container "side" in pod "web" has not started on node gw-1 yet'),
            "no previous": (await http.get(f"{PODS}/web/log", params={"previous": "1"}), 400,
                            'previous terminated container "app" in pod "web" not found'),
            "bad tail": (await http.get(f"{PODS}/web/log", params={"tailLines": "-1"}), 400,
                         'tailLines "-1" is not a whole number'),
        }
        for what, (response, code, message) in errors.items():
            assert response.status_code == code, (what, response.text)
            assert response.json()["kind"] == "Status" and message in response.json()["message"], what

        logs_dir = tmp_path / "pods" / uid / "logs" / "app"
        logs_dir.mkdir(parents=True)
        (logs_dir / "0.log").write_text("2026-01-01T00:00:00Z stdout F before the crash\n"
                                        "2026-01-01T00:00:01Z stderr P part\n2026-01-01T00:00:01Z stderr F ial\n")
        (logs_dir / "1.log").write_text("2026-01-01T00:00:02Z stdout F after\n")
        previous = await http.get(f"{PODS}/web/log", params={"previous": "true"})
        assert previous.status_code == 200 and previous.text == "before the crash\npartial\n"

        await _pod(http, "floating", node="")
        unbound = await http.get(f"{PODS}/floating/log")
        assert unbound.status_code == 400 and "is not bound to a node yet" in unbound.json()["message"]

        as_node = await http.get(f"{PODS}/web/log", headers={"Authorization": "Bearer gw1-token"})
        assert as_node.status_code == 403
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer gw2-token"}) as gw2:
            assert (await gw2.get("/api/v1/nodes/gw-1/tunnel")).status_code == 403  # not its own tunnel
            assert (await gw2.post("/api/v1/nodes/gw-1/tunnel/x-1", content=b"")).status_code == 403

    asyncio.run(_scenario(tmp_path, body))


def test_follow_streams_and_stops_on_the_node_when_the_user_leaves(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, hub: TunnelHub, tunnel: NodeTunnel, driver: FollowingDriver,
                   stop: asyncio.Event, group: asyncio.TaskGroup, url: str) -> None:
        uid = await _pod(http, "web")
        cid = await _container(driver, uid, "app")
        driver.write_log(cid, "first")
        group.create_task(tunnel.run(stop))
        await _wait_connected(hub, "gw-1")
        seen = ""
        async with http.stream("GET", f"{PODS}/web/log/follow", params={"tailLines": "1"}) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_text():
                seen += chunk
                if "tick 3\n" in seen:
                    break
        assert seen.startswith("first\ntick 0\n")
        await asyncio.wait_for(driver.follow_closed.wait(), 5)  # the cancel reached the node
        for _ in range(100):
            if not tunnel._running:
                break
            await asyncio.sleep(0.02)
        assert tunnel._running == {}

    asyncio.run(_scenario(tmp_path, body))


def test_exec_relays_output_and_exit_code(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, hub: TunnelHub, tunnel: NodeTunnel, driver: FollowingDriver,
                   stop: asyncio.Event, group: asyncio.TaskGroup, url: str) -> None:
        uid = await _pod(http, "web", containers=("app", "idle"))
        await _container(driver, uid, "app")
        await _container(driver, uid, "idle", start=False)
        group.create_task(tunnel.run(stop))
        await _wait_connected(hub, "gw-1")
        response = await http.post(f"{PODS}/web/exec", params=[("command", "sh"), ("command", "-c"),
                                                                ("command", "echo hi; exit 3")])
        assert response.status_code == 200, response.text
        frames = FrameDecoder().feed(response.content)
        assert [(f.channel, f.payload) for f in frames[:-1]] == [(Channel.STDOUT, b"hi\n"),
                                                                  (Channel.STDERR, b"oops\n")]
        assert frames[-1].result() == (3, "")
        assert driver.exec_calls == [("sh", "-c", "echo hi; exit 3")]
        no_command = await http.post(f"{PODS}/web/exec")
        assert no_command.status_code == 400 and "exec needs a command" in no_command.json()["message"]
        created = await http.post(f"{PODS}/web/exec", params={"command": "true", "container": "idle"})
        assert created.status_code == 400
        assert created.json()["message"] == 'container "idle" in pod "web" is Created; exec needs it Running'

    asyncio.run(_scenario(tmp_path, body))


def test_agent_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, hub: TunnelHub, tunnel: NodeTunnel, driver: FollowingDriver,
                   stop: asyncio.Event, group: asyncio.TaskGroup, url: str) -> None:
        uid = await _pod(http, "web")
        cid = await _container(driver, uid, "app")
        driver.write_log(cid, "still here")
        group.create_task(tunnel.run(stop))
        await _wait_connected(hub, "gw-1")
        before = hub._tunnels["gw-1"]
        before.frames.put_nowait(None)  # the server ends the stream (as a restart would)
        for _ in range(300):
            if hub._tunnels.get("gw-1") not in (None, before):
                break
            await asyncio.sleep(0.01)
        assert hub._tunnels.get("gw-1") not in (None, before), "the agent did not open a new tunnel"
        assert (await http.get(f"{PODS}/web/log")).text == "still here\n"

    asyncio.run(_scenario(tmp_path, body))
