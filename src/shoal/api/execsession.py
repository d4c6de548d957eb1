"""Interactive exec sessions: a user's stdin and window size reach a process on a node through its tunnel.

``POST .../pods/NAME/exec/stream?command=..&stdin=1&tty=1`` sends an ``exec-stream`` frame down
the node's tunnel under a fresh unguessable session id and answers with the process's output (the
framing of ``shoal.client.stream``, relayed from the agent like a one-shot exec), the id in the
``X-Shoal-Exec-Session`` header. The user then POSTs input frames (stdin, resize, end of stdin) to
``.../exec/stream/ID``; they wait in a bounded queue until the agent, which only ever dials out,
pulls them with ``GET /api/v1/nodes/NODE/tunnel/ID/input``. A session ends, and its queue with it,
when its output stream ends for either side. Admin credentials only; a node reads only its own
sessions' input. It must not touch the store except through the tunnel routes' pod check.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from shoal.api.errors import ApiError
from shoal.api.tunnel import EXEC_MEDIA_TYPE, TunnelHub, TunnelRequest, _flag, _number, _only, _subject, _target
from shoal.client.stream import EXEC_SESSION_HEADER, Channel, FrameDecoder, FramingError

__all__ = ["ExecSessions", "exec_session_paths", "exec_session_routes"]

INPUT_QUEUE = 64  # input POSTs waiting for the agent, per session
INPUT_BODY_MAX = 1 << 20
INPUT_WAIT_SECONDS = 10.0
_INPUT_CHANNELS = frozenset({Channel.STDIN, Channel.RESIZE, Channel.CLOSE_STDIN})


class ExecSession:
    """One interactive exec: its tunnel request (whose answer is the output) and its input queue."""

    def __init__(self, request: TunnelRequest, namespace: str, pod: str) -> None:
        self.request = request
        self.namespace = namespace
        self.pod = pod
        self.inputs: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=INPUT_QUEUE)
        self.closed = False

    def close(self) -> None:
        """Drop what the agent has not read and end its input stream."""
        self.closed = True
        while not self.inputs.empty():
            self.inputs.get_nowait()
        self.inputs.put_nowait(None)

    async def put(self, frames: bytes) -> None:
        """Queue input for the agent; 503 when it has not read any for INPUT_WAIT_SECONDS."""
        try:
            await asyncio.wait_for(self.inputs.put(frames), INPUT_WAIT_SECONDS)
        except TimeoutError:
            raise ApiError(503, f"node {self.request.node} has not read this session's input for "
                                f"{INPUT_WAIT_SECONDS:g}s; retry later or end the session") from None
        if self.closed:  # it ended while we waited: the agent will not read this
            raise ApiError(404, "the exec session ended (the process exited or the node went away)")

    async def stream(self) -> AsyncIterator[bytes]:
        """The agent's input stream: everything queued, as it comes, until the session ends."""
        while (item := await self.inputs.get()) is not None:
            batch = [item]
            while not self.inputs.empty() and (more := self.inputs.get_nowait()) is not None:
                batch.append(more)
            yield b"".join(batch)
            if self.closed:
                return


class ExecSessions:
    """The open sessions by id; one per server process, beside the tunnel hub."""

    def __init__(self) -> None:
        self._sessions: dict[str, ExecSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, hub: TunnelHub, node: str, frame: dict[str, Any], namespace: str, pod: str) -> ExecSession:
        request = hub.send(node, frame, request_id=secrets.token_urlsafe(24))
        session = ExecSession(request, namespace, pod)
        self._sessions[request.id] = session
        request.on_finish.append(lambda: self._close(request.id))
        return session

    def _close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.close()

    def for_user(self, session_id: str, namespace: str, pod: str) -> ExecSession:
        session = self._sessions.get(session_id)
        if session is None or (session.namespace, session.pod) != (namespace, pod):
            raise ApiError(404, f'pod "{pod}" has no exec session "{session_id}" (it ended, or it is another '
                                "pod's)", kind="Pod", name=pod)
        return session

    def for_node(self, node: str, session_id: str) -> ExecSession:
        session = self._sessions.get(session_id)
        if session is None or session.request.node != node:
            raise ApiError(404, f'node {node} has no exec session "{session_id}" open')
        return session


def _input_frames(body: bytes) -> None:
    """400 unless ``body`` is whole input frames (stdin, resize with a sane size, end of stdin)."""
    decoder = FrameDecoder()
    try:
        frames = decoder.feed(body)
        decoder.close()
        for frame in frames:
            if frame.channel not in _INPUT_CHANNELS:
                raise FramingError(f"channel {int(frame.channel)} is output; input frames are on channels "
                                   "4 (stdin), 5 (resize) and 6 (end of stdin)")
            if frame.channel is Channel.RESIZE:
                frame.size()
    except FramingError as exc:
        raise ApiError(400, f"exec input: {exc}") from None


async def accept_input(request: Request[Any, Any, Any], sessions: ExecSessions, session_id: str, namespace: str,
                       name: str, what: str) -> None:
    """Queue a user's input frames for session ``session_id`` of pod ``namespace/name`` (admin only)."""
    if _subject(request).startswith("node:"):
        raise ApiError(403, f"node credentials cannot {what}; use an admin token")
    session = sessions.for_user(session_id, namespace, name)
    body = await request.body()
    _input_frames(body)
    if body:
        await session.put(body)


def exec_session_routes(hub: TunnelHub, sessions: ExecSessions | None = None) -> list[HTTPRouteHandler]:
    """The user-facing open and input routes and the agent-facing input stream, bound to ``hub``."""
    registry = sessions if sessions is not None else ExecSessions()

    @post("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/exec/stream", status_code=200)
    async def open_exec_session(request: Request[Any, Any, Any], namespace: str, plural: str,
                                name: str) -> Response[Any]:
        _only(plural, "pods", "exec")
        query = request.query_params
        command = query.getall("command", [])
        if not command:
            raise ApiError(400, "exec needs a command: ?command=sh (one command parameter per argument)")
        rows = _number("rows", query.get("rows"), None, 65535)
        cols = _number("cols", query.get("cols"), None, 65535)
        if (rows is None) != (cols is None) or rows == 0 or cols == 0:
            raise ApiError(400, "give both rows and cols (1 to 65535) for the terminal size, or neither")
        pod, container, node = await _target(request, namespace, name)
        frame = {"op": "exec-stream", "namespace": namespace, "pod": name, "uid": pod.metadata.uid,
                 "container": container, "command": command, "stdin": _flag(query.get("stdin")),
                 "tty": _flag(query.get("tty")), "rows": rows, "cols": cols}
        session = registry.open(hub, node, frame, namespace, name)
        return await hub.answer_with(session.request, headers={EXEC_SESSION_HEADER: session.request.id})

    @post("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/exec/stream/{session_id:str}",
          status_code=204, request_max_body_size=INPUT_BODY_MAX)
    async def exec_session_input(request: Request[Any, Any, Any], namespace: str, plural: str, name: str,
                                 session_id: str) -> None:
        _only(plural, "pods", "exec")
        await accept_input(request, registry, session_id, namespace, name, "exec into pods")

    @get("/api/v1/{plural:str}/{name:str}/tunnel/{session_id:str}/input")
    async def exec_session_input_stream(request: Request[Any, Any, Any], plural: str, name: str,
                                        session_id: str) -> Stream:
        _only(plural, "nodes", "tunnel")
        if _subject(request) != f"node:{name}":
            raise ApiError(403, f"only node {name}'s own credentials may use its tunnel", kind="Node", name=name)
        return Stream(registry.for_node(name, session_id).stream(), media_type=EXEC_MEDIA_TYPE)

    return [open_exec_session, exec_session_input, exec_session_input_stream]


def exec_session_paths(paths: dict[str, Any], pod_params: list[dict[str, Any]], failures: dict[str, Any]) -> None:
    """The OpenAPI operations of the interactive exec routes."""
    from shoal.api.openapi import error_responses, parameter

    framed = {EXEC_MEDIA_TYPE: {"schema": {"type": "string"}}}
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    session = {**parameter("session"), "schema": {"type": "string"}}
    paths["/api/v1/namespaces/{namespace}/pods/{name}/exec/stream"] = {
        "parameters": pod_params,
        "post": {"operationId": "openPodExecSession", "tags": ["pods", "streaming"],
                 "summary": "Start an interactive command: its output as frames (channel 1|2, then a result on 3) "
                            "until it exits; the session id (for input) in the X-Shoal-Exec-Session header",
                 "parameters": [parameter("container", "query", "container name (default: the pod's first)"),
                                {**parameter("command", "query", "one per argument"), "required": True},
                                parameter("stdin", "query", "1: the process reads the session's input"),
                                parameter("tty", "query", "1: run it on a pseudo-terminal"),
                                parameter("rows", "query", "terminal rows (with tty)"),
                                parameter("cols", "query", "terminal columns (with tty)")],
                 "responses": {"200": {"description": "framed output", "content": framed,
                                       "headers": {EXEC_SESSION_HEADER: {"schema": {"type": "string"}}}},
                               **failures}}}
    paths["/api/v1/namespaces/{namespace}/pods/{name}/exec/stream/{session}"] = {
        "parameters": [*pod_params, session],
        "post": {"operationId": "sendPodExecSessionInput", "tags": ["pods", "streaming"],
                 "summary": "Input for an interactive command: frames on channel 4 (stdin), 5 (resize, JSON "
                            '{"rows": R, "cols": C}) and 6 (end of stdin)',
                 "requestBody": {"content": framed},
                 "responses": {"204": {"description": "queued for the node"},
                               **error_responses("400", "401", "404"),
                               "403": {"description": "node credentials may not do this", "content": status},
                               "503": {"description": "the node is not reading this session's input",
                                       "content": status}}}}
    paths["/api/v1/nodes/{name}/tunnel/{session}/input"] = {
        "parameters": [parameter("name"), session],
        "get": {"operationId": "readNodeTunnelExecInput", "tags": ["nodes", "streaming"],
                "summary": "For the node's agent: the input frames of one of its exec sessions, as they come",
                "responses": {"200": {"description": "framed input", "content": framed},
                              **error_responses("401", "404"),
                              "403": {"description": "not this node's credentials", "content": status}}}}
