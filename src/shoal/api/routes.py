"""The Litestar application: REST routes for every kind, watches, node heartbeats, health.

Thin adapters over ``ResourceAPI``: parse the path and query, call it, encode the answer.
Authentication wraps the whole app (``auth.TokenAuth``); errors become Status objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from litestar import Litestar, Request, Response, delete, get, patch, post, put
from litestar.exceptions import HTTPException
from litestar.response import Stream

from shoal import __version__
from shoal.api.auth import ASGIApp, PeerLookup, TokenAuth, TokenLookup
from shoal.api.authz import authorize, check_heartbeats, check_node_name, check_pod_node, node_of
from shoal.api.errors import (
    ApiError,
    handle_api_error,
    handle_http_exception,
    handle_store_error,
    handle_unexpected,
)
from shoal.api.fieldselector import parse_field_selector
from shoal.api.openapi import build_openapi
from shoal.api.resources import ResourceAPI, kind_for, parse_body
from shoal.api.watch import LineCache, parse_revision, stream
from shoal.model import API_VERSION, Object, SelectorError, parse_selector
from shoal.store.protocol import Store, StoreError

_encode = msgspec.json.Encoder().encode
_JSON = "application/json"
_JSON_TYPES = ("application/json", "application/merge-patch+json", "application/apply-patch+json",
               "application/apply-patch+yaml", "application/yaml")


@dataclass
class ApiState:
    resources: ResourceAPI
    store: Store
    on_heartbeat: Callable[[Sequence[str]], None]
    ready: Callable[[], bool]
    lines: LineCache = field(default_factory=LineCache)
    openapi: bytes = b""


def _state(request: Request[Any, Any, Any]) -> ApiState:
    state: ApiState = request.app.state["shoal"]
    return state


def _subject(request: Request[Any, Any, Any]) -> str:
    return str((request.scope.get("state") or {}).get("subject") or "")


async def _authorize_request(request: Request[Any, Any, Any]) -> None:
    """Resource-level authorization before any handler runs (object-level checks follow in them)."""
    subject = _subject(request)
    path = request.url.path
    if node_of(subject) is None or not path.startswith("/api/v1/") or path == "/api/v1/heartbeats":
        return
    params = request.path_params
    if "plural" in params:
        plural, name, sub = str(params["plural"]), params.get("name"), params.get("sub")
        if path.startswith("/api/v1/namespaces/") and plural == "status" and "name" not in params:
            plural, name, sub = "namespaces", params.get("namespace"), "status"
    else:  # the namespace routes: /api/v1/namespaces[/NAME]
        plural, name, sub = "namespaces", params.get("name"), None
    authorize(subject, request.method, plural, None if name is None else str(name), None if sub is None else str(sub))


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(_encode(obj), status_code=status, media_type=_JSON, headers=headers)


async def _body(request: Request[Any, Any, Any], allowed: tuple[str, ...] = ("application/json",)) -> Any:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in allowed:
        raise ApiError(415, f'content type "{content_type}" is not supported here; use {" or ".join(allowed)}')
    return parse_body(await request.body(), content_type)


def _list_response(items: list[Object], revision: int) -> Response[bytes]:
    body = (b'{"apiVersion":"' + API_VERSION.encode() + b'","kind":"List","metadata":{"resourceVersion":"'
            + str(revision).encode() + b'"},"items":[' + b",".join(_encode(i) for i in items) + b"]}")
    return Response(body, media_type=_JSON)


async def _list_or_watch(request: Request[Any, Any, Any], plural: str, namespace: str | None,
                         watch: bool = False) -> Response[Any]:
    state = _state(request)
    info = kind_for(plural)
    query = request.query_params
    if not info.namespaced and namespace is not None:
        raise ApiError(404, f"{plural} are cluster-scoped; use /api/v1/{plural}")
    if watch or query.get("watch", "") in ("1", "true", "True"):
        try:
            selector = parse_selector(query.get("labelSelector", "")) if query.get("labelSelector") else None
        except SelectorError as exc:
            raise ApiError(400, f"labelSelector: {exc}") from None
        revision = parse_revision(query.get("resourceVersion", ""))
        scope = namespace if info.namespaced else None
        fields = parse_field_selector(query.get("fieldSelector", ""))
        return Stream(stream(state.store, state.lines, info, scope, revision, selector, fields),
                      media_type="application/x-ndjson")
    result = await state.resources.list(info, namespace, query.get("labelSelector", ""),
                                        query.get("fieldSelector", ""))
    return _list_response(result.items, result.revision)


async def _create(request: Request[Any, Any, Any], plural: str, namespace: str | None) -> Response[bytes]:
    info = kind_for(plural)
    body = await _body(request)
    if plural == "nodes":
        meta = body.get("metadata") if isinstance(body, dict) else None
        check_node_name(_subject(request), meta.get("name") if isinstance(meta, dict) else None)
    obj = await _state(request).resources.create(info, namespace, body)
    return _json(obj, 201)


async def _patch(request: Request[Any, Any, Any], plural: str, namespace: str | None, name: str) -> Response[bytes]:
    info = kind_for(plural)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    resources = _state(request).resources
    if content_type.startswith("application/apply-patch"):
        body = await _body(request, ("application/apply-patch+json", "application/apply-patch+yaml"))
        manager = request.query_params.get("fieldManager", "")
        obj, result = await resources.apply(info, namespace, name, body, manager)
        return _json(obj, 201 if result == "created" else 200, {"X-Shoal-Apply": result})
    body = await _body(request, ("application/merge-patch+json", "application/json"))
    return _json(await resources.merge_patch(info, namespace, name, body))


# -- namespaces themselves (their paths overlap the namespaced ones) ----------------------------
@get("/api/v1/namespaces")
async def list_namespaces(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _list_or_watch(request, "namespaces", None)


@post("/api/v1/namespaces")
async def create_namespace(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _create(request, "namespaces", None)


@get("/api/v1/namespaces/{name:str}")
async def read_namespace(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    return _json(await _state(request).resources.get(kind_for("namespaces"), None, name))


@put("/api/v1/namespaces/{name:str}")
async def replace_namespace(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    resources = _state(request).resources
    return _json(await resources.replace(kind_for("namespaces"), None, name, await _body(request)))


@patch("/api/v1/namespaces/{name:str}")
async def patch_namespace(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    return await _patch(request, "namespaces", None, name)


@delete("/api/v1/namespaces/{name:str}", status_code=200)
async def delete_namespace(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    return _json(await _state(request).resources.delete(kind_for("namespaces"), None, name))


# -- namespaced ---------------------------------------------------------------------------
@get("/api/v1/namespaces/{namespace:str}/{plural:str}")
async def list_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str) -> Response[Any]:
    if plural == "status":  # /api/v1/namespaces/NAME/status
        return await _subresource(request, "namespaces", None, namespace, "status")
    return await _list_or_watch(request, plural, namespace)


@put("/api/v1/namespaces/{namespace:str}/{plural:str}")
async def put_namespace_status(request: Request[Any, Any, Any], namespace: str, plural: str) -> Response[bytes]:
    if plural != "status":
        raise ApiError(405, f"PUT needs an object name: /api/v1/namespaces/{namespace}/{plural}/NAME")
    return await _subresource(request, "namespaces", None, namespace, "status")


@post("/api/v1/namespaces/{namespace:str}/{plural:str}")
async def create_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str) -> Response[bytes]:
    return await _create(request, plural, namespace)


@get("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}")
async def read_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str, name: str) -> Response[bytes]:
    return _json(await _state(request).resources.get(kind_for(plural), namespace, name))


@put("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}")
async def replace_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str,
                             name: str) -> Response[bytes]:
    info = kind_for(plural)
    return _json(await _state(request).resources.replace(info, namespace, name, await _body(request)))


@patch("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}")
async def patch_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str, name: str) -> Response[bytes]:
    return await _patch(request, plural, namespace, name)


@delete("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}", status_code=200)
async def delete_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str, name: str) -> Response[bytes]:
    rv = request.query_params.get("resourceVersion", "")
    return _json(await _state(request).resources.delete(kind_for(plural), namespace, name, rv))


async def _subresource(request: Request[Any, Any, Any], plural: str, namespace: str | None, name: str,
                       sub: str) -> Response[bytes]:
    state = _state(request)
    info = kind_for(plural)
    method = request.method
    if sub == "status":
        if method == "GET":
            obj = await state.resources.get(info, namespace, name)
            if not info.has_status:
                raise ApiError(404, f"{plural} have no status subresource")
            return _json(obj)
        if method == "PUT":
            if plural == "pods" and node_of(_subject(request)) is not None:
                pod = await state.resources.get(info, namespace, name)
                check_pod_node(_subject(request), name, getattr(getattr(pod, "spec", None), "node_name", ""))
            return _json(await state.resources.replace_status(info, namespace, name, await _body(request)))
    elif sub == "scale" and plural == "deployments":
        if method == "GET":
            return _json(await state.resources.get_scale(namespace, name))
        if method == "PUT":
            manager = request.query_params.get("fieldManager", "shoal-scale")
            return _json(await state.resources.put_scale(namespace, name, await _body(request), manager))
    elif sub == "heartbeat" and plural == "nodes" and method == "POST":
        await state.resources.get(info, None, name)
        state.on_heartbeat([name])
        return Response(b"", status_code=204)
    else:
        raise ApiError(404, f'{plural} have no subresource "{sub}"')
    raise ApiError(405, f"{method} is not allowed on {plural}/{sub}")


@get("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/{sub:str}")
async def get_sub_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str, name: str,
                             sub: str) -> Response[bytes]:
    return await _subresource(request, plural, namespace, name, sub)


@put("/api/v1/namespaces/{namespace:str}/{plural:str}/{name:str}/{sub:str}")
async def put_sub_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str, name: str,
                             sub: str) -> Response[bytes]:
    return await _subresource(request, plural, namespace, name, sub)


# -- cluster-scoped and all-namespace lists -----------------------------------------------------
@get("/api/v1/{plural:str}")
async def list_cluster(request: Request[Any, Any, Any], plural: str) -> Response[Any]:
    return await _list_or_watch(request, plural, None)


@post("/api/v1/{plural:str}")
async def create_cluster(request: Request[Any, Any, Any], plural: str) -> Response[bytes]:
    return await _create(request, plural, None)


@get("/api/v1/{plural:str}/{name:str}")
async def read_cluster(request: Request[Any, Any, Any], plural: str, name: str) -> Response[bytes]:
    return _json(await _state(request).resources.get(kind_for(plural), None, name))


@put("/api/v1/{plural:str}/{name:str}")
async def replace_cluster(request: Request[Any, Any, Any], plural: str, name: str) -> Response[bytes]:
    info = kind_for(plural)
    return _json(await _state(request).resources.replace(info, None, name, await _body(request)))


@patch("/api/v1/{plural:str}/{name:str}")
async def patch_cluster(request: Request[Any, Any, Any], plural: str, name: str) -> Response[bytes]:
    return await _patch(request, plural, None, name)


@delete("/api/v1/{plural:str}/{name:str}", status_code=200)
async def delete_cluster(request: Request[Any, Any, Any], plural: str, name: str) -> Response[bytes]:
    rv = request.query_params.get("resourceVersion", "")
    return _json(await _state(request).resources.delete(kind_for(plural), None, name, rv))


@get("/api/v1/{plural:str}/{name:str}/{sub:str}")
async def get_sub_cluster(request: Request[Any, Any, Any], plural: str, name: str, sub: str) -> Response[bytes]:
    return await _subresource(request, plural, None, name, sub)


@put("/api/v1/{plural:str}/{name:str}/{sub:str}")
async def put_sub_cluster(request: Request[Any, Any, Any], plural: str, name: str, sub: str) -> Response[bytes]:
    return await _subresource(request, plural, None, name, sub)


@post("/api/v1/{plural:str}/{name:str}/{sub:str}")
async def post_sub_cluster(request: Request[Any, Any, Any], plural: str, name: str, sub: str) -> Response[bytes]:
    return await _subresource(request, plural, None, name, sub)


# -- watches, heartbeats, health ----------------------------------------------------------
@get("/api/v1/watch/namespaces/{namespace:str}/{plural:str}")
async def watch_namespaced(request: Request[Any, Any, Any], namespace: str, plural: str) -> Response[Any]:
    return await _list_or_watch(request, plural, namespace, watch=True)


@get("/api/v1/watch/{plural:str}")
async def watch_cluster(request: Request[Any, Any, Any], plural: str) -> Response[Any]:
    return await _list_or_watch(request, plural, None, watch=True)


@post("/api/v1/heartbeats", status_code=204)
async def heartbeats(request: Request[Any, Any, Any]) -> None:
    body = await _body(request)
    nodes = body.get("nodes") if isinstance(body, dict) else None
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise ApiError(422, 'send {"nodes": ["name", ...]}', kind="Heartbeat")
    check_heartbeats(_subject(request), nodes)
    _state(request).on_heartbeat(nodes)


@get("/healthz", media_type="text/plain")
async def healthz() -> str:
    return "ok"


@get("/readyz", media_type="text/plain")
async def readyz(request: Request[Any, Any, Any]) -> Response[str]:
    ready = _state(request).ready()
    return Response("ok" if ready else "starting", status_code=200 if ready else 503, media_type="text/plain")


@get("/version")
async def version() -> Response[bytes]:
    return _json({"version": __version__, "apiVersion": API_VERSION})


@get("/openapi.json")
async def openapi(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(_state(request).openapi, media_type=_JSON)


ROUTES = [
    list_namespaces, create_namespace, read_namespace, replace_namespace, patch_namespace, delete_namespace,
    put_namespace_status, list_namespaced, create_namespaced, read_namespaced, replace_namespaced,
    patch_namespaced, delete_namespaced, get_sub_namespaced, put_sub_namespaced, list_cluster, create_cluster,
    read_cluster, replace_cluster, patch_cluster, delete_cluster, get_sub_cluster, put_sub_cluster,
    post_sub_cluster, watch_namespaced, watch_cluster, heartbeats, healthz, readyz, version, openapi,
]


def create_app(store: Store, tokens: TokenLookup, on_heartbeat: Callable[[Sequence[str]], None],
               clock: Callable[[], dt.datetime], ready: Callable[[], bool] = lambda: True,
               lifespan: Sequence[Any] = (), extra_routes: Sequence[Any] = (),
               peer: PeerLookup | None = None) -> tuple[ASGIApp, Litestar]:
    """The ASGI app (auth in front: tokens, and client certificates through ``peer``) and the Litestar
    app inside it."""
    state = ApiState(resources=ResourceAPI(store, clock), store=store, on_heartbeat=on_heartbeat, ready=ready,
                     openapi=msgspec.json.encode(build_openapi()))
    app = Litestar(
        route_handlers=[*ROUTES, *extra_routes],
        openapi_config=None,
        before_request=_authorize_request,
        exception_handlers={ApiError: handle_api_error, StoreError: handle_store_error,
                            HTTPException: handle_http_exception, Exception: handle_unexpected},
        lifespan=list(lifespan),
        debug=False,
    )
    app.state["shoal"] = state
    return TokenAuth(cast(ASGIApp, app), tokens, peer=peer), app
