"""Node tunnels: logs and exec reach a node through a stream its agent opened, never a server dial.

An agent keeps ``GET /api/v1/nodes/NAME/tunnel`` open (its own node token only); the server
writes NDJSON request frames down it (``{"id", "op": "logs"|"exec"|"cancel", ...}``, a ``ping``
when idle). The agent answers each request with a streaming ``POST /api/v1/nodes/NAME/tunnel/ID``
whose ``X-Shoal-Status`` header is the answer's HTTP status and whose body is the output, which
the server relays to the waiting user request unchanged (plain text for logs, the framing of
``shoal.client.stream`` for exec). Port forwarding (``shoal.api.portforward``) and image push to a
node (``shoal.api.imagepush``) travel the same way. ``TunnelHub`` is the in-memory registry of open tunnels and
requests in flight; it must not touch the store. The user-facing routes check the pod in the
store, then hand the request to the hub. Interactive exec sessions (their input going the other
way) are in ``shoal.api.execsession``.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from shoal.api.errors import ApiError
from shoal.api.resources import ResourceAPI, kind_for
from shoal.model import Pod

if TYPE_CHECKING:
    from shoal.api.imagepush import ImageUploads

__all__ = ["TunnelHub", "TunnelRequest", "tunnel_paths", "tunnel_routes"]

KEEPALIVE_SECONDS = 15.0
ANSWER_SECONDS = 15.0
_PING = b'{"op":"ping"}\n'
_CHUNKS_IN_FLIGHT = 64
_ERROR_BODY_MAX = 64 << 10
EXEC_MEDIA_TYPE = "application/x-shoal-exec"  # the framing of shoal.client.stream


class _Tunnel:
    def __init__(self, node: str) -> None:
        self.node = node
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue()


class TunnelRequest:
    """One user request in flight to a node: the agent's answer (status, media type) and its body."""

    def __init__(self, request_id: str, tunnel: _Tunnel) -> None:
        self.id = request_id
        self.tunnel = tunnel
        self.node = tunnel.node
        self.answer: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.ended = False  # the agent sent the whole body
        self.abandoned = False  # the user went away; drop whatever still comes
        self.on_finish: list[Callable[[], None]] = []  # called once the hub forgets the request
        self._chunks: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def answered(self, status: int, media_type: str) -> bool:
        if self.answer.done():
            return False
        self.answer.set_result((status, media_type))
        return True

    async def push(self, chunk: bytes) -> bool:
        """Queue a body chunk for the user (waits while the user is behind); False once abandoned."""
        while len(self._chunks) >= _CHUNKS_IN_FLIGHT and not self.abandoned:
            self._writable.clear()
            await self._writable.wait()
        if self.abandoned:
            return False
        self._chunks.append(chunk)
        self._readable.set()
        return True

    def end(self) -> None:
        self.ended = True
        self._readable.set()

    async def pull(self) -> bytes | None:
        """The next body chunk, or None at the end of the body."""
        while not self._chunks:
            if self.ended:
                return None
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._writable.set()
        return chunk

    def abandon(self) -> None:
        self.abandoned = True
        self._chunks.clear()
        self._writable.set()
        if not self.answer.done():
            self.answer.cancel()


class TunnelHub:
    """Open tunnels by node and requests in flight by id; one per server process."""

    def __init__(self, keepalive: float = KEEPALIVE_SECONDS, answer_timeout: float = ANSWER_SECONDS) -> None:
        self.keepalive = keepalive
        self.answer_timeout = answer_timeout
        self._tunnels: dict[str, _Tunnel] = {}
        self._requests: dict[str, TunnelRequest] = {}
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4)

    def connected(self, node: str) -> bool:
        return node in self._tunnels

    def attach(self, node: str) -> _Tunnel:
        """A new tunnel for ``node``; an older one of the same node is closed (the agent reconnected)."""
        old = self._tunnels.get(node)
        if old is not None:
            old.frames.put_nowait(None)
        tunnel = _Tunnel(node)
        self._tunnels[node] = tunnel
        return tunnel

    def detach(self, tunnel: _Tunnel) -> None:
        """The tunnel's stream ended: requests sent down it and not answered yet fail with 503."""
        if self._tunnels.get(tunnel.node) is tunnel:
            del self._tunnels[tunnel.node]
        for request in list(self._requests.values()):
            if request.tunnel is tunnel and not request.answer.done():
                request.answer.set_exception(ApiError(503, f"node {tunnel.node} closed its tunnel before "
                                                           "answering; retry when its agent is back"))
                request.answer.exception()  # whoever waits still gets it; nobody waiting is fine too
                self._forget(request)

    def send(self, node: str, frame: dict[str, Any], request_id: str = "") -> TunnelRequest:
        """Send a request frame to ``node`` (under ``request_id`` if given); 503 when its agent has no tunnel open."""
        tunnel = self._tunnels.get(node)
        if tunnel is None:
            raise ApiError(503, f"node {node} has no tunnel open (is its agent running?)")
        request = TunnelRequest(request_id or f"{self._prefix}-{next(self._ids)}", tunnel)
        self._requests[request.id] = request
        tunnel.frames.put_nowait(msgspec.json.encode({**frame, "id": request.id}) + b"\n")
        return request

    def lookup(self, node: str, request_id: str) -> TunnelRequest:
        request = self._requests.get(request_id)
        if request is None or request.node != node:
            raise ApiError(404, f'node {node} has no request "{request_id}" in flight (the user went away '
                                "or it was answered already)")
        return request

    def _forget(self, request: TunnelRequest) -> None:
        if self._requests.pop(request.id, None) is not None:
            for callback in request.on_finish:
                callback()

    def finish(self, request: TunnelRequest) -> None:
        """The user side is done: forget the request and tell the agent to stop if it is still going."""
        self._forget(request)
        if not request.ended:
            request.abandon()
            tunnel = self._tunnels.get(request.node)
            if tunnel is not None:
                tunnel.frames.put_nowait(msgspec.json.encode({"id": request.id, "op": "cancel"}) + b"\n")

    async def lines(self, tunnel: _Tunnel) -> AsyncIterator[bytes]:
        """The tunnel stream: request frames as they come, a ping when idle; detaches when it ends."""
        try:
            yield _PING
            while True:
                try:
                    frame = await asyncio.wait_for(tunnel.frames.get(), self.keepalive)
                except TimeoutError:
                    yield _PING
                    continue
                closing = frame is None
                batch = [] if frame is None else [frame]
                while not closing and not tunnel.frames.empty():
                    more = tunnel.frames.get_nowait()
                    closing = more is None
                    batch += [] if more is None else [more]
                if batch:
                    yield b"".join(batch)
                if closing:
                    return
        finally:
            self.detach(tunnel)

    async def relay(self, node: str, frame: dict[str, Any]) -> Response[Any]:
        """Send ``frame`` and answer the user with what the node sends back (streamed when it is OK)."""
        return await self.answer_with(self.send(node, frame))

    async def answer_with(self, request: TunnelRequest, headers: dict[str, str] | None = None) -> Response[Any]:
        """Answer the user with what the node sends back to ``request`` (streamed, with ``headers``, if OK)."""
        node = request.node
        try:
            try:
                status, media_type = await asyncio.wait_for(asyncio.shield(request.answer), self.answer_timeout)
            except TimeoutError:
                raise ApiError(504, f"node {node} did not answer within {self.answer_timeout:g}s") from None
            if status != 200:
                body = b""
                while (chunk := await request.pull()) is not None and len(body) < _ERROR_BODY_MAX:
                    body += chunk
                self.finish(request)
                return Response(body, status_code=status, media_type="application/json")
        except BaseException:
            self.finish(request)
            raise
        return Stream(self._body(request), media_type=media_type, headers=headers)

    async def _body(self, request: TunnelRequest) -> AsyncIterator[bytes]:
        try:
            while (chunk := await request.pull()) is not None:
                yield chunk
        finally:
            self.finish(request)


def _subject(request: Request[Any, Any, Any]) -> str:
    return str((request.scope.get("state") or {}).get("subject") or "")


def _only(plural: str, wanted: str, sub: str) -> None:
    if plural != wanted:
        kind_for(plural)  # 404 for an unknown kind
        raise ApiError(404, f'{plural} have no subresource "{sub}"')


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _number(name: str, value: str | None, default: int | None, maximum: int) -> int | None:
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) > maximum:
        raise ApiError(400, f'{name} "{value}" is not a whole number from 0 to {maximum}')
    return int(value)


async def _target(request: Request[Any, Any, Any], namespace: str, name: str) -> tuple[Pod, str, str]:
    """The pod, the container (default: the first) and its node; Status errors for every miss."""
    if _subject(request).startswith("node:"):
        raise ApiError(403, "node credentials cannot read logs or exec into pods; use an admin token")
    resources: ResourceAPI = request.app.state["shoal"].resources
    pod = await resources.get(kind_for("pods"), namespace, name)
    assert isinstance(pod, Pod)
    names = [c.name for c in pod.spec.containers]
    container = request.query_params.get("container") or names[0]
    if container not in names:
        raise ApiError(404, f'container "{container}" not found in pod "{name}"; its containers are '
                            f'{", ".join(names)}', kind="Pod", name=name)
    if not pod.spec.node_name:
        raise ApiError(400, f'pod "{name}" is not bound to a node yet; wait until it is scheduled '
                            f"(shoal get pod {name})", kind="Pod", name=name)
    return pod, container, pod.spec.node_name


def tunnel_routes(hub: TunnelHub, uploads: ImageUploads | None = None) -> list[HTTPRouteHandler]:
    """The agent-facing tunnel routes and the user-facing log, exec, port-forward and image push routes,
    bound to ``hub`` (image pushes spooled by ``uploads``; default: the temp dir, $SHOAL_IMAGE_PUSH_MAX_BYTES)."""

    def own_node(request: Request[Any, Any, Any], name: str) -> None:
        if _subject(request) != f"node:{name}":
            raise ApiError(403, f"only node {name}'s own credentials may use its tunnel", kind="Node", name=name)

    @get("/api/v1/{plural:str}/{name:str}/tunnel")
    async def open_tunnel(request: Request[Any, Any, Any], plural: str, name: str) -> Stream:
        _only(plural, "nodes", "tunnel")
        own_node(request, name)
        return Stream(hub.lines(hub.attach(name)), media_type="application/x-ndjson")

    @post("/api/v1/{plural:str}/{name:str}/tunnel/{request_id:str}", status_code=204, request_max_body_size=None)
    async def answer(request: Request[Any, Any, Any], plural: str, name: str, request_id: str) -> None:
        _only(plural, "nodes", "tunnel")
        own_node(request, name)
        pending = hub.lookup(name, request_id)
        try:
            status = int(request.headers.get("x-shoal-status", "200"))
        except ValueError:
            raise ApiError(400, "X-Shoal-Status must be an HTTP status code") from None
        if not pending.answered(status, request.headers.get("content-type", "application/octet-stream")):
            raise ApiError(409, f'request "{request_id}" was answered already')
        try:
            async for chunk in request.stream():
                if chunk and not await pending.push(chunk):
                    return
        finally:
            pending.end()

    async def logs(request: Request[Any, Any, Any], namespace: str, plural: str, name: str,
                   follow: bool) -> Response[Any]:
        _only(plural, "pods", "log")
        query = request.query_params
        pod, container, node = await _target(request, namespace, name)
        previous = _flag(query.get("previous"))
        frame = {"op": "logs", "namespace": namespace, "pod": name, "uid": pod.metadata.uid,
                 "container": container, "follow": follow and not previous,
                 "tail": _number("tailLines", query.get("tailLines"), None, 1 << 31), "previous": previous}
        return await hub.relay(node, frame)

    # The paths use the same parameters as the generic routes (a static "pods" segment would hide them).
    @get("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/log")
    async def pod_log(request: Request[Any, Any, Any], namespace: str, plural: str, name: str) -> Response[Any]:
        return await logs(request, namespace, plural, name, _flag(request.query_params.get("follow")))

    @get("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/log/follow")
    async def follow_pod_log(request: Request[Any, Any, Any], namespace: str, plural: str,
                             name: str) -> Response[Any]:
        return await logs(request, namespace, plural, name, True)

    @post("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/exec", status_code=200)
    async def pod_exec(request: Request[Any, Any, Any], namespace: str, plural: str, name: str) -> Response[Any]:
        _only(plural, "pods", "exec")
        query = request.query_params
        command = query.getall("command", [])
        if not command:
            raise ApiError(400, "exec needs a command: ?command=sh&command=-c&command=echo+hi "
                                "(one command parameter per argument)")
        pod, container, node = await _target(request, namespace, name)
        frame = {"op": "exec", "namespace": namespace, "pod": name, "uid": pod.metadata.uid,
                 "container": container, "command": command,
                 "timeout": _number("timeoutSeconds", query.get("timeoutSeconds"), 60, 86400)}
        return await hub.relay(node, frame)

    from shoal.api.execsession import ExecSessions, exec_session_routes  # they build on this module's helpers
    from shoal.api.imagepush import image_push_routes
    from shoal.api.portforward import portforward_routes

    sessions = ExecSessions()  # interactive execs and forwarded connections: their input goes the same way
    return [open_tunnel, answer, pod_log, follow_pod_log, pod_exec, *exec_session_routes(hub, sessions),
            *portforward_routes(hub, sessions), *image_push_routes(hub, uploads)]


def tunnel_paths(paths: dict[str, Any]) -> None:
    """The OpenAPI operations of the log, exec and tunnel routes (streaming ones tagged ``streaming``)."""
    from shoal.api.openapi import error_responses, parameter

    pod_params = [parameter("namespace"), parameter("name")]
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    failures = {**error_responses("400", "401", "404"),
                "403": {"description": "node credentials may not do this", "content": status},
                "500": {"description": "the node failed to serve it", "content": status},
                "503": {"description": "the pod's node has no tunnel open (its agent is not running)",
                        "content": status},
                "504": {"description": "the pod's node did not answer in time", "content": status}}
    common = [parameter("container", "query", "container name (default: the pod's first container)")]
    text = {"text/plain": {"schema": {"type": "string"}}}
    paths["/api/v1/namespaces/{namespace}/pods/{name}/log"] = {
        "parameters": pod_params,
        "get": {"operationId": "readPodLog", "tags": ["pods"],
                "summary": "A container's log (the current one, or the one before its last restart)",
                "parameters": [*common, parameter("tailLines", "query", "only the last N lines"),
                               parameter("previous", "query", "1: the log of the previous, terminated instance")],
                "responses": {"200": {"description": "the log as text", "content": text}, **failures}}}
    paths["/api/v1/namespaces/{namespace}/pods/{name}/log/follow"] = {
        "parameters": pod_params,
        "get": {"operationId": "followPodLog", "tags": ["pods", "streaming"],
                "summary": "A container's log, then new lines as they are written until the container ends "
                           "(the same as .../log?follow=1)",
                "parameters": [*common, parameter("tailLines", "query", "start with the last N lines")],
                "responses": {"200": {"description": "a text stream", "content": text}, **failures}}}
    paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"] = {
        "parameters": pod_params,
        "post": {"operationId": "execPod", "tags": ["pods", "streaming"],
                 "summary": "Run a command in a container: stdout/stderr frames, then a result frame "
                            "(5-byte header: channel 1|2|3, big-endian length)",
                 "parameters": [*common, {**parameter("command", "query", "one per argument"), "required": True},
                                parameter("timeoutSeconds", "query", "kill the command after this (default 60)")],
                 "responses": {"200": {"description": "framed output",
                                       "content": {EXEC_MEDIA_TYPE: {"schema": {"type": "string"}}}},
                               **failures}}}
    from shoal.api.execsession import exec_session_paths

    exec_session_paths(paths, pod_params, failures)
    from shoal.api.imagepush import image_push_paths
    from shoal.api.portforward import portforward_paths

    portforward_paths(paths, pod_params, failures)
    image_push_paths(paths, failures)
    paths["/api/v1/nodes/{name}/tunnel"] = {
        "parameters": [parameter("name")],
        "get": {"operationId": "openNodeTunnel", "tags": ["nodes", "streaming"],
                "summary": "For the node's agent: NDJSON request frames (logs, exec, cancel, ping)",
                "responses": {"200": {"description": "NDJSON frames",
                                      "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                              **error_responses("401"),
                              "403": {"description": "not this node's credentials", "content": status}}}}
    paths["/api/v1/nodes/{name}/tunnel/{id}"] = {
        "parameters": [parameter("name"), {**parameter("id"), "schema": {"type": "string"}}],
        "post": {"operationId": "answerNodeTunnel", "tags": ["nodes", "streaming"],
                 "summary": "For the node's agent: the streamed answer to one tunnel request",
                 "parameters": [parameter("X-Shoal-Status", "header", "the answer's HTTP status (default 200)")],
                 "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string"}}}},
                 "responses": {"204": {"description": "relayed"}, **error_responses("400", "401", "404", "409"),
                               "403": {"description": "not this node's credentials", "content": status}}}}
