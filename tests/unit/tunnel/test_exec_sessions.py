"""The server's exec session registry: ids nobody can guess, input queued for the node in a bounded
queue, a node that stops reading makes input fail instead of piling up, and a session ends (its
input stream with it) whenever the tunnel request behind it ends."""

from __future__ import annotations

import asyncio
import json

import pytest

from shoal.api import execsession
from shoal.api.errors import ApiError
from shoal.api.execsession import ExecSessions, _input_frames
from shoal.api.tunnel import TunnelHub
from shoal.client.stream import Channel, encode_frame, encode_resize


def _frame() -> dict[str, object]:
    return {"op": "exec-stream", "command": ["sh"]}


def test_ids_are_unguessable_and_sent_to_the_node() -> None:
    async def scenario() -> None:
        hub, sessions = TunnelHub(keepalive=60), ExecSessions()
        tunnel = hub.attach("gw-1")
        opened = [sessions.open(hub, "gw-1", _frame(), "default", "web") for _ in range(50)]
        ids = {s.request.id for s in opened}
        assert len(ids) == 50 and all(len(i) >= 32 for i in ids)
        sent = [json.loads(tunnel.frames.get_nowait()) for _ in range(50)]
        assert [f["id"] for f in sent] == [s.request.id for s in opened]
        assert sessions.for_user(opened[0].request.id, "default", "web") is opened[0]
        assert sessions.for_node("gw-1", opened[0].request.id) is opened[0]
        for wrong in (lambda: sessions.for_user(opened[0].request.id, "default", "db"),
                      lambda: sessions.for_user(opened[0].request.id, "plant-a", "web"),
                      lambda: sessions.for_user("guess", "default", "web"),
                      lambda: sessions.for_node("gw-2", opened[0].request.id)):
            with pytest.raises(ApiError) as caught:
                wrong()
            assert caught.value.code == 404

    asyncio.run(scenario())


def test_input_reaches_the_node_in_order_and_the_stream_ends_with_the_session() -> None:
    async def scenario() -> None:
        hub, sessions = TunnelHub(keepalive=60), ExecSessions()
        hub.attach("gw-1")
        session = sessions.open(hub, "gw-1", _frame(), "default", "web")
        stream = session.stream()
        await session.put(b"a")
        await session.put(b"b")
        assert await asyncio.wait_for(anext(stream), 1) == b"ab"  # what waited goes in one chunk
        hub.finish(session.request)  # the user went away
        assert len(sessions) == 0 and session.closed
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), 1)

    asyncio.run(scenario())


def test_a_node_that_does_not_read_makes_input_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execsession, "INPUT_WAIT_SECONDS", 0.05)

    async def scenario() -> None:
        hub, sessions = TunnelHub(keepalive=60), ExecSessions()
        hub.attach("gw-1")
        session = sessions.open(hub, "gw-1", _frame(), "default", "web")
        for _ in range(execsession.INPUT_QUEUE):
            await session.put(b"x")
        with pytest.raises(ApiError) as caught:
            await session.put(b"one too many")
        assert caught.value.code == 503
        assert "node gw-1 has not read this session's input" in caught.value.message

    asyncio.run(scenario())


def test_the_tunnel_closing_ends_unanswered_sessions() -> None:
    async def scenario() -> None:
        hub, sessions = TunnelHub(keepalive=60), ExecSessions()
        tunnel = hub.attach("gw-1")
        session = sessions.open(hub, "gw-1", _frame(), "default", "web")
        hub.detach(tunnel)
        assert len(sessions) == 0 and session.closed
        with pytest.raises(ApiError) as caught:
            await session.request.answer
        assert caught.value.code == 503

    asyncio.run(scenario())


def test_input_frames_are_checked() -> None:
    _input_frames(encode_frame(Channel.STDIN, b"ls\n") + encode_resize(24, 80) + encode_frame(Channel.CLOSE_STDIN, b""))
    _input_frames(b"")
    for body, message in ((encode_frame(Channel.RESULT, b"{}"), "channel 3 is output"),
                          (encode_resize(0, 80), "rows and cols must be integers from 1 to 65535"),
                          (encode_frame(Channel.RESIZE, b"[]"), "resize frame is not"),
                          (b"\x09\x00\x00\x00\x00", "unknown channel 9"),
                          (encode_frame(Channel.STDIN, b"abc")[:-1], "ended inside a frame")):
        with pytest.raises(ApiError) as caught:
            _input_frames(body)
        assert caught.value.code == 400 and message in caught.value.message, (body, caught.value.message)
