"""The server's tunnel registry: requests go down the node's own tunnel, answers come back in order,
users going away cancel the node's work, and a vanished tunnel fails what it had not answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.agent.tunnel import previous_log
from shoal.api.errors import ApiError
from shoal.api.tunnel import TunnelHub


async def _next_frames(lines: AsyncIterator[bytes]) -> list[dict[str, object]]:
    chunk = await asyncio.wait_for(anext(lines), 2)
    return [json.loads(line) for line in chunk.splitlines()]


def test_no_tunnel_is_503_naming_the_node() -> None:
    async def scenario() -> None:
        hub = TunnelHub()
        with pytest.raises(ApiError) as caught:
            hub.send("gw-1", {"op": "logs"})
        assert caught.value.code == 503
        assert caught.value.message == "node gw-1 has no tunnel open (is its agent running?)"

    asyncio.run(scenario())


def test_request_answer_and_cancel_round_trip() -> None:
    async def scenario() -> None:
        hub = TunnelHub(keepalive=60)
        lines = hub.lines(hub.attach("gw-1"))
        assert await _next_frames(lines) == [{"op": "ping"}]
        request = hub.send("gw-1", {"op": "logs", "pod": "web"})
        [frame] = await _next_frames(lines)
        assert frame == {"op": "logs", "pod": "web", "id": request.id}
        with pytest.raises(ApiError) as other:
            hub.lookup("gw-2", request.id)  # another node cannot answer for gw-1
        assert other.value.code == 404
        assert hub.lookup("gw-1", request.id) is request
        assert request.answered(200, "text/plain")
        assert not request.answered(200, "text/plain")
        assert await request.push(b"a\n") and await request.push(b"b\n")
        assert [await request.pull(), await request.pull()] == [b"a\n", b"b\n"]
        hub.finish(request)  # the user disconnected mid-stream
        assert await _next_frames(lines) == [{"id": request.id, "op": "cancel"}]
        assert not await request.push(b"late\n")  # the agent's late output is dropped
        with pytest.raises(ApiError):
            hub.lookup("gw-1", request.id)
        await lines.aclose()
        assert not hub.connected("gw-1")

    asyncio.run(scenario())


def test_a_finished_request_sends_no_cancel() -> None:
    async def scenario() -> None:
        hub = TunnelHub(keepalive=0.05)
        lines = hub.lines(hub.attach("gw-1"))
        await _next_frames(lines)
        request = hub.send("gw-1", {"op": "exec"})
        await _next_frames(lines)
        request.answered(200, "x")
        request.end()
        assert await request.pull() is None
        hub.finish(request)
        assert await _next_frames(lines) == [{"op": "ping"}]  # only keepalives from here on
        await lines.aclose()

    asyncio.run(scenario())


def test_slow_user_holds_the_agent_back() -> None:
    async def scenario() -> None:
        hub = TunnelHub()
        hub.attach("gw-1")
        request = hub.send("gw-1", {"op": "logs"})
        for i in range(64):
            assert await request.push(b"%d" % i)
        blocked = asyncio.create_task(request.push(b"more"))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # backpressure: the POST handler stops reading the agent's upload
        assert await request.pull() == b"0"
        assert await asyncio.wait_for(blocked, 1)

    asyncio.run(scenario())


def test_lost_tunnel_fails_unanswered_requests_and_reconnect_replaces_old() -> None:
    async def scenario() -> None:
        hub = TunnelHub()
        old = hub.lines(hub.attach("gw-1"))
        await _next_frames(old)
        pending = hub.send("gw-1", {"op": "logs"})
        new = hub.lines(hub.attach("gw-1"))  # the agent reconnected: the old stream ends
        await _next_frames(new)
        assert (await _next_frames(old))[0]["id"] == pending.id  # what was queued still goes out
        with pytest.raises(StopAsyncIteration):
            await anext(old)
        assert hub.connected("gw-1")  # the old stream ending did not drop the new tunnel
        with pytest.raises(ApiError) as caught:  # nobody answered on the old tunnel: it fails at once
            await pending.answer
        assert caught.value.code == 503 and "closed its tunnel" in caught.value.message
        answered = hub.send("gw-1", {"op": "logs"})
        answered.answered(200, "text/plain")
        await new.aclose()
        assert not hub.connected("gw-1")
        assert answered.answer.result() == (200, "text/plain")  # answered ones keep streaming

    asyncio.run(scenario())


def test_relay_times_out_with_504_and_cancels() -> None:
    async def scenario() -> None:
        hub = TunnelHub(answer_timeout=0.05)
        lines = hub.lines(hub.attach("gw-1"))
        await _next_frames(lines)
        with pytest.raises(ApiError) as caught:
            await hub.relay("gw-1", {"op": "logs"})
        assert caught.value.code == 504 and "gw-1 did not answer within 0.05s" in caught.value.message
        frames = await _next_frames(lines)
        assert frames[0]["op"] == "logs" and frames[-1]["op"] == "cancel"
        await lines.aclose()

    asyncio.run(scenario())


def test_previous_log_is_the_one_before_the_last_restart(tmp_path: Path) -> None:
    logs = tmp_path / "uid-1" / "logs" / "app"
    assert previous_log(tmp_path, "uid-1", "app") is None
    logs.mkdir(parents=True)
    (logs / "0.log").write_text("")
    assert previous_log(tmp_path, "uid-1", "app") is None  # never restarted
    for n in (1, 2, 10):
        (logs / f"{n}.log").write_text("")
    assert previous_log(tmp_path, "uid-1", "app") == logs / "2.log"  # numeric, not lexical order
