"""Interactive exec sessions end to end in one process: the real API app under uvicorn on loopback,
the real agent-side ``NodeTunnel`` with the in-memory runtime (whose exec echoes stdin and ends on
``exit N``), and the real ``ExecSession`` client. Users see their input come back, window sizes
reach the process, exit codes, Status errors for every miss, and sessions vanish when either side goes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from test_tunnel_inprocess import PODS, FollowingDriver, _container, _pod, _scenario, _wait_connected

from shoal.agent.tunnel import NodeTunnel
from shoal.api.openapi import build_openapi
from shoal.api.tunnel import TunnelHub
from shoal.client import ClientConfig
from shoal.client.stream import EXEC_SESSION_HEADER, Channel, ExecSession, FrameDecoder, encode_frame, encode_resize
from shoal.runtime.protocol import TerminalSize


def _input(data: bytes) -> bytes:
    return encode_frame(Channel.STDIN, data)


async def _started(tunnel: NodeTunnel, group: asyncio.TaskGroup, stop: asyncio.Event, hub: TunnelHub) -> None:
    group.create_task(tunnel.run(stop))
    await _wait_connected(hub, "gw-1")


def test_session_streams_input_resizes_and_exit_code(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, hub: TunnelHub, tunnel: NodeTunnel, driver: FollowingDriver,
                   stop: asyncio.Event, group: asyncio.TaskGroup, url: str) -> None:
        uid = await _pod(http, "web")
        await _container(driver, uid, "app")
        await _started(tunnel, group, stop, hub)
        params = [("command", "sh"), ("stdin", "1"), ("tty", "1"), ("rows", "30"), ("cols", "100")]
        async with http.stream("POST", f"{PODS}/web/exec/stream", params=params,
                               timeout=httpx.Timeout(10, read=10)) as response:
            assert response.status_code == 200
            session = response.headers[EXEC_SESSION_HEADER]
            assert len(session) >= 32
            inputs = f"{PODS}/web/exec/stream/{session}"
            chunks = response.aiter_bytes()
            decoder = FrameDecoder()
            assert (await http.post(inputs, content=_input(b"hello\n"))).status_code == 204
            frames = decoder.feed(await anext(chunks))
            assert [(f.channel, f.payload) for f in frames] == [(Channel.STDOUT, b"hello\n")]
            assert (await http.post(inputs, content=encode_resize(50, 132))).status_code == 204
            assert (await http.post(inputs, content=_input(b"exit 5\n"))).status_code == 204
            async for chunk in chunks:
                frames += decoder.feed(chunk)
        assert frames[-1].channel is Channel.RESULT and frames[-1].result() == (5, "")
        [stream] = driver.exec_streams
        assert (stream.argv, stream.tty, stream.stdin) == (("sh",), True, True)
        assert stream.sizes == [TerminalSize(30, 100), TerminalSize(50, 132)]
        for _ in range(100):
            if stream.closed and not tunnel._running:
                break
            await asyncio.sleep(0.02)
        assert stream.closed and tunnel._running == {}
        gone = await http.post(inputs, content=_input(b"late\n"))
        assert gone.status_code == 404 and "has no exec session" in gone.json()["message"]

    asyncio.run(_scenario(tmp_path, body))


def test_session_client_and_errors(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, hub: TunnelHub, tunnel: NodeTunnel, driver: FollowingDriver,
                   stop: asyncio.Event, group: asyncio.TaskGroup, url: str) -> None:
        uid = await _pod(http, "web", containers=("app", "idle"))
        await _container(driver, uid, "app")
        await _container(driver, uid, "idle", start=False)
        await _pod(http, "other")
        await _started(tunnel, group, stop, hub)

        def client_round_trip() -> tuple[list[tuple[Channel, bytes]], str]:
            config = ClientConfig(server=url, token="admin-token")
            with ExecSession(config, "default", "web", ["cat"], stdin=True) as session:
                assert session.send(b"one\n") and session.close_stdin()
                return [(f.channel, f.payload) for f in session.frames()], session.id

        frames, session = await asyncio.to_thread(client_round_trip)
        assert frames == [(Channel.STDOUT, b"one\n"), (Channel.RESULT, b'{"exitCode":0,"message":""}')]

        errors = {
            "no command": (await http.post(f"{PODS}/web/exec/stream"), 400, "exec needs a command"),
            "half a size": (await http.post(f"{PODS}/web/exec/stream", params={"command": "sh", "rows": "3"}),
                            400, "give both rows and cols"),
            "not running": (await http.post(f"{PODS}/web/exec/stream", params={"command": "sh", "container": "idle"}),
                            400, 'container "idle" in pod "web" is Created; exec needs it Running'),
            "as a node": (await http.post(f"{PODS}/web/exec/stream", params={"command": "sh"},
                                          headers={"Authorization": "Bearer gw1-token"}), 403, ""),
            "unknown session": (await http.post(f"{PODS}/web/exec/stream/{session}", content=_input(b"x")), 404,
                                f'pod "web" has no exec session "{session}"'),
        }
        async with http.stream("POST", f"{PODS}/web/exec/stream", params={"command": "cat", "stdin": "1"}) as open_:
            live = open_.headers[EXEC_SESSION_HEADER]
            inputs = f"{PODS}/web/exec/stream/{live}"
            errors |= {
                "output channel as input": (await http.post(inputs, content=encode_frame(Channel.STDOUT, b"x")), 400,
                                            "channel 1 is output"),
                "cut frame": (await http.post(inputs, content=_input(b"abc")[:-1]), 400, "ended inside a frame"),
                "bad size": (await http.post(inputs, content=encode_frame(Channel.RESIZE, b'{"rows": 0}')), 400,
                             "resize frame is not"),
                "another pod's session": (await http.post(f"{PODS}/other/exec/stream/{live}", content=b""), 404,
                                          'pod "other" has no exec session'),
                "node posts input": (await http.post(inputs, content=_input(b"x"),
                                                     headers={"Authorization": "Bearer gw1-token"}), 403, ""),
            }
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer gw2-token"}) as gw2:
                other_node = await gw2.get(f"/api/v1/nodes/gw-1/tunnel/{live}/input")
                own_node = await gw2.get(f"/api/v1/nodes/gw-2/tunnel/{live}/input")
            errors["another node reads input"] = (other_node, 403, "only node gw-1's own credentials")
            errors["input of another node's session"] = (own_node, 404, "node gw-2 has no exec session")
            # the user goes away without ending stdin: the session and the node's process go with them
        for _ in range(100):
            if driver.exec_streams[-1].closed and not tunnel._running:
                break
            await asyncio.sleep(0.02)
        assert driver.exec_streams[-1].closed and tunnel._running == {}
        for what, (response, code, message) in errors.items():
            assert response.status_code == code, (what, response.text)
            assert message in response.json()["message"], (what, response.text)

    asyncio.run(_scenario(tmp_path, body))


def test_openapi_lists_the_session_routes() -> None:
    paths = build_openapi()["paths"]
    assert paths["/api/v1/namespaces/{namespace}/pods/{name}/exec/stream"]["post"]["operationId"] == \
        "openPodExecSession"
    assert "post" in paths["/api/v1/namespaces/{namespace}/pods/{name}/exec/stream/{session}"]
    assert "get" in paths["/api/v1/nodes/{name}/tunnel/{session}/input"]
