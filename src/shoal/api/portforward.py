"""Port forwarding: each of a user's TCP connections reaches a port inside a pod through its node's tunnel.

``POST .../pods/NAME/portforward?port=P`` carries one TCP connection. The pod must be Running on a
node; a ``port-forward`` frame goes down that node's tunnel under a fresh unguessable session id,
the agent connects to 127.0.0.1:P inside the pod's network namespace and answers with what the pod
sends (frames on channel 1 of ``shoal.client.stream``, then a result frame when the pod's side
closed, or an error Status when nothing listens there). The session id comes back in the
``X-Shoal-Exec-Session`` header; the user's bytes go in POSTs of frames (channel 4 data, channel 6
half-close) to ``.../portforward/ID`` and reach the agent exactly as an interactive exec's input
does (``shoal.api.execsession``: the same queue and the same ``GET .../tunnel/ID/input``). One
connection closing ends only its session. Admin credentials only; it must not touch the store
except to read the pod.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from shoal.api.errors import ApiError
from shoal.api.execsession import INPUT_BODY_MAX, ExecSessions, accept_input
from shoal.api.tunnel import TunnelHub, _number, _only, _target
from shoal.client.stream import EXEC_MEDIA_TYPE, EXEC_SESSION_HEADER
from shoal.model.pod import PodPhase

__all__ = ["portforward_paths", "portforward_routes"]


def portforward_routes(hub: TunnelHub, sessions: ExecSessions) -> list[HTTPRouteHandler]:
    """The open and input routes of forwarded connections; their input is read through ``sessions``."""

    @post("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/portforward", status_code=200)
    async def open_port_forward(request: Request[Any, Any, Any], namespace: str, plural: str,
                                name: str) -> Response[Any]:
        _only(plural, "pods", "portforward")
        port = _number("port", request.query_params.get("port"), None, 65535)
        if not port:
            raise ApiError(400, "port-forward needs the port inside the pod: ?port=N (1 to 65535)")
        pod, container, node = await _target(request, namespace, name)
        phase = pod.status.phase
        if phase is not PodPhase.RUNNING:
            raise ApiError(400, f'pod "{name}" is {phase.value}; port-forward needs it Running '
                                f"(see `shoal describe pod {name}`)", kind="Pod", name=name)
        frame = {"op": "port-forward", "namespace": namespace, "pod": name, "uid": pod.metadata.uid,
                 "container": container, "port": port}
        session = sessions.open(hub, node, frame, namespace, name)
        return await hub.answer_with(session.request, headers={EXEC_SESSION_HEADER: session.request.id})

    @post("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/portforward/{session_id:str}",
          status_code=204, request_max_body_size=INPUT_BODY_MAX)
    async def port_forward_input(request: Request[Any, Any, Any], namespace: str, plural: str, name: str,
                                 session_id: str) -> None:
        _only(plural, "pods", "portforward")
        await accept_input(request, sessions, session_id, namespace, name, "forward ports of pods")

    return [open_port_forward, port_forward_input]


def portforward_paths(paths: dict[str, Any], pod_params: list[dict[str, Any]], failures: dict[str, Any]) -> None:
    """The OpenAPI operations of the port-forward routes."""
    from shoal.api.openapi import error_responses, parameter

    framed = {EXEC_MEDIA_TYPE: {"schema": {"type": "string"}}}
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    paths["/api/v1/namespaces/{namespace}/pods/{name}/portforward"] = {
        "parameters": pod_params,
        "post": {"operationId": "openPodPortForward", "tags": ["pods", "streaming"],
                 "summary": "One TCP connection to a port inside the pod: what the pod sends as frames on channel 1, "
                            "then a result frame on 3 when it closed; the session id (for the user's bytes) in the "
                            f"{EXEC_SESSION_HEADER} header",
                 "parameters": [{**parameter("port", "query", "the TCP port inside the pod (1 to 65535)"),
                                 "required": True}],
                 "responses": {"200": {"description": "framed bytes from the pod", "content": framed,
                                       "headers": {EXEC_SESSION_HEADER: {"schema": {"type": "string"}}}},
                               **failures}}}
    paths["/api/v1/namespaces/{namespace}/pods/{name}/portforward/{session}"] = {
        "parameters": [*pod_params, {**parameter("session"), "schema": {"type": "string"}}],
        "post": {"operationId": "sendPodPortForwardInput", "tags": ["pods", "streaming"],
                 "summary": "The user's bytes for a forwarded connection: frames on channel 4 (data) and 6 "
                            "(the user's side closed for writing)",
                 "requestBody": {"content": framed},
                 "responses": {"204": {"description": "queued for the node"},
                               **error_responses("400", "401", "404"),
                               "403": {"description": "node credentials may not do this", "content": status},
                               "503": {"description": "the node is not reading this connection's input",
                                       "content": status}}}}
