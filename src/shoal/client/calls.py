"""The REST contract of docs/api.md as data: each client method is a ``Call`` (method, path, body)
plus a function that turns the HTTP response into the method's result.

Pure: builds paths and parses responses, never does I/O, so the sync and async clients share it and
tests can check it without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from shoal.client.errors import ApiError
from shoal.model import API_VERSION, DEFAULT_NAMESPACE, KindInfo, lookup

T = TypeVar("T")
Obj = dict[str, Any]
KindRef = str | KindInfo

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+json"
JSON = "application/json"
APPLY_HEADER = "X-Shoal-Apply"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = JSON

    def content(self) -> bytes | None:
        return None if self.body is None else msgspec.json.encode(self.body)

    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type} if self.body is not None else {}


def kind_info(kind: KindRef) -> KindInfo:
    return kind if isinstance(kind, KindInfo) else lookup(kind)


def collection_path(info: KindInfo, namespace: str | None) -> str:
    if info.namespaced and namespace:
        return f"/api/v1/namespaces/{quote(namespace, safe='')}/{info.plural}"
    return f"/api/v1/{info.plural}"


def object_path(info: KindInfo, namespace: str | None, name: str) -> str:
    if not name:
        raise ValueError(f"a {info.kind} name is required")
    ns = (namespace or DEFAULT_NAMESPACE) if info.namespaced else None
    return f"{collection_path(info, ns)}/{quote(name, safe='')}"


def watch_path(info: KindInfo, namespace: str | None) -> str:
    return "/api/v1/watch" + collection_path(info, namespace).removeprefix("/api/v1")


def selector_params(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def identity(obj: Mapping[str, Any]) -> tuple[KindInfo, str | None, str]:
    """The kind, namespace (None when cluster-scoped; "default" when unset) and name of a dict object."""
    kind = obj.get("kind")
    if not isinstance(kind, str):
        raise ValueError("the object has no kind")
    info = lookup(kind)
    raw_meta = obj.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = str(meta.get("name") or "")
    namespace = (str(meta.get("namespace") or "") or DEFAULT_NAMESPACE) if info.namespaced else None
    return info, namespace, name


def decode_body(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ApiError.from_body(response.status_code, response.content)
    return msgspec.json.decode(response.content) if response.content else None


def _as_object(response: httpx.Response) -> Obj:
    body = decode_body(response)
    if not isinstance(body, dict):
        raise ApiError(response.status_code, "BadResponse",
                       f"expected a JSON object from the server, got {body!r}")
    return body


def _as_list(response: httpx.Response) -> tuple[list[Obj], str]:
    body = _as_object(response)
    meta = body.get("metadata") or {}
    return list(body.get("items") or []), str(meta.get("resourceVersion") or "")


def _as_none(response: httpx.Response) -> None:
    decode_body(response)


def _as_applied(response: httpx.Response) -> tuple[Obj, str]:
    obj = _as_object(response)
    result = response.headers.get(APPLY_HEADER, "")
    if result not in ("created", "configured", "unchanged"):
        result = "created" if response.status_code == 201 else "configured"
    return obj, result


def get(kind: KindRef, namespace: str | None, name: str) -> Call[Obj]:
    return Call("GET", object_path(kind_info(kind), namespace, name), _as_object)


def list_(kind: KindRef, namespace: str | None = None, label_selector: str | None = None,
          field_selector: str | None = None) -> Call[tuple[list[Obj], str]]:
    info = kind_info(kind)
    return Call("GET", collection_path(info, namespace), _as_list,
                params=selector_params(label_selector, field_selector))


def create(obj: Obj) -> Call[Obj]:
    info, namespace, _ = identity(obj)
    return Call("POST", collection_path(info, namespace), _as_object, body=obj)


def replace(obj: Obj) -> Call[Obj]:
    info, namespace, name = identity(obj)
    return Call("PUT", object_path(info, namespace, name), _as_object, body=obj)


def merge_patch(kind: KindRef, namespace: str | None, name: str, patch: Obj) -> Call[Obj]:
    return Call("PATCH", object_path(kind_info(kind), namespace, name), _as_object, body=patch,
                content_type=MERGE_PATCH)


def apply(obj: Obj, field_manager: str = "shoal-cli") -> Call[tuple[Obj, str]]:
    info, namespace, name = identity(obj)
    return Call("PATCH", object_path(info, namespace, name), _as_applied, body=obj,
                content_type=APPLY_PATCH, params={"fieldManager": field_manager})


def delete(kind: KindRef, namespace: str | None, name: str) -> Call[Obj]:
    return Call("DELETE", object_path(kind_info(kind), namespace, name), _as_object)


def get_status(kind: KindRef, namespace: str | None, name: str) -> Call[Obj]:
    return Call("GET", object_path(kind_info(kind), namespace, name) + "/status", _as_object)


def put_status(obj: Obj) -> Call[Obj]:
    info, namespace, name = identity(obj)
    return Call("PUT", object_path(info, namespace, name) + "/status", _as_object, body=obj)


def get_scale(namespace: str | None, name: str) -> Call[Obj]:
    return Call("GET", object_path(lookup("Deployment"), namespace, name) + "/scale", _as_object)


def scale(namespace: str | None, name: str, replicas: int) -> Call[Obj]:
    ns = namespace or DEFAULT_NAMESPACE
    body = {"apiVersion": API_VERSION, "kind": "Scale", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas}}
    return Call("PUT", object_path(lookup("Deployment"), ns, name) + "/scale", _as_object, body=body)


def heartbeat(node: str) -> Call[None]:
    return Call("POST", f"/api/v1/nodes/{quote(node, safe='')}/heartbeat", _as_none)


def heartbeats(nodes: Sequence[str]) -> Call[None]:
    return Call("POST", "/api/v1/heartbeats", _as_none, body={"nodes": list(nodes)})


def version() -> Call[Obj]:
    return Call("GET", "/version", _as_object)


def watch_params(resource_version: str | None, label_selector: str | None,
                 field_selector: str | None) -> dict[str, str]:
    params = selector_params(label_selector, field_selector)
    if resource_version:
        params["resourceVersion"] = str(resource_version)
    return params


def watch_event(line: bytes | str) -> tuple[str, Obj] | None:
    """One NDJSON watch line as ``(type, object)``; an ERROR line raises its Status as ApiError."""
    if not line.strip():
        return None
    try:
        event = msgspec.json.decode(line)
    except msgspec.DecodeError:
        raise ApiError(502, "BadResponse",
                       f"the server sent a watch line that is not JSON: {line[:200]!r}") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ApiError(502, "BadResponse", f"the server sent a watch line without a type: {line[:200]!r}")
    raw = event.get("object")
    obj: Obj = raw if isinstance(raw, dict) else {}
    if event["type"] == "ERROR":
        raise ApiError.from_status(int(obj.get("code") or 500), obj)
    return str(event["type"]), obj
