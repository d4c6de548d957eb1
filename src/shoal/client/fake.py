"""An in-memory implementation of the REST contract (docs/api.md) behind ``httpx.MockTransport``.

Unit tests of the client, the CLI, agents and simulators use it instead of a server:
``Client(config, transport=FakeApi().transport())``. It keeps objects in dicts, one global revision
and an event log for watches, checks the bearer token and answers errors as Status objects. It is
a fake: no controllers, no persistence, watches replay the log and end instead of staying open.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from shoal.model import BY_PLURAL, KindInfo, ValidationError, decode_object, parse_selector

Obj = dict[str, Any]
_PUBLIC = {"/healthz", "/readyz", "/version", "/openapi.json"}
_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "involvedObject.kind",
           "involvedObject.name", "involvedObject.namespace")


class _Fail(Exception):
    def __init__(self, code: int, reason: str, message: str, causes: list[Obj] | None = None) -> None:
        self.code = code
        self.status = {"kind": "Status", "apiVersion": "shoal/v1", "status": "Failure", "code": code,
                       "reason": reason, "message": message, "details": {"causes": causes or []}}
        super().__init__(message)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _dotted(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _field_matcher(text: str) -> Callable[[Obj], bool]:
    terms = []
    for term in filter(None, text.split(",")):
        match = re.fullmatch(r"([\w.]+)(==|!=|=)(.*)", term)
        if not match or match.group(1) not in _FIELDS:
            raise _Fail(400, "BadRequest", f'unsupported field selector "{term}"; fields: {", ".join(_FIELDS)}')
        terms.append((match.group(1), match.group(2) != "!=", match.group(3)))
    return lambda obj: all((_dotted(obj, f) == v) == eq for f, eq, v in terms)


class FakeApi:
    """The fake server. ``requests`` records every request; ``heartbeats`` every renewed node lease."""

    def __init__(self, token: str = "test-token", clock: Callable[[], datetime] | None = None) -> None:
        self.token = token
        self.clock = clock or (lambda: datetime.now(UTC))
        self.revision = 0
        self.compacted = 0
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.log: list[tuple[int, str, Obj]] = []
        self.requests: list[httpx.Request] = []
        self.heartbeats: list[str] = []
        self._uids = itertools.count(1)
        self.seed({"apiVersion": "shoal/v1", "kind": "Namespace", "metadata": {"name": "default"}})

    def transport(self) -> httpx.MockTransport:
        """A transport for ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        return httpx.MockTransport(self.handle)

    def seed(self, obj: Obj) -> Obj:
        """Store ``obj`` as if created through the API (no validation); returns the stored copy."""
        info = BY_PLURAL[_plural_of(obj)]
        ns = (obj.get("metadata", {}).get("namespace") or "default") if info.namespaced else ""
        return self._store(info, ns, dict(obj), "ADDED")

    def _store(self, info: KindInfo, ns: str, obj: Obj, event: str) -> Obj:
        self.revision += 1
        meta = dict(obj.get("metadata") or {})
        if info.namespaced:
            meta["namespace"] = ns
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["resourceVersion"] = str(self.revision)
        obj = {**obj, "apiVersion": "shoal/v1", "kind": info.kind, "metadata": meta}
        key = (info.plural, ns, meta["name"])
        if event == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.log.append((self.revision, event, obj))
        return obj

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        try:
            if request.url.path not in _PUBLIC and request.headers.get("Authorization") != f"Bearer {self.token}":
                raise _Fail(401, "Unauthorized", "Unauthorized")
            return self._route(request)
        except _Fail as fail:
            return httpx.Response(fail.code, json=fail.status)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/version":
            return httpx.Response(200, json={"version": "fake", "apiVersion": "shoal/v1"})
        if path == "/api/v1/heartbeats" and method == "POST":
            self.heartbeats += list(self._body(request).get("nodes") or [])
            return httpx.Response(204)
        if m := re.fullmatch(r"/api/v1/nodes/([^/]+)/heartbeat", path):
            self.heartbeats.append(m.group(1))
            return httpx.Response(204)
        watch = path.startswith("/api/v1/watch/") or request.url.params.get("watch") in ("1", "true")
        parts = path.removeprefix("/api/v1/").removeprefix("watch/").split("/")
        ns = ""
        if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] in BY_PLURAL:
            ns, parts = parts[1], parts[2:]
        info = BY_PLURAL.get(parts[0])
        if not path.startswith("/api/v1/") or info is None or len(parts) > 3:
            raise _Fail(404, "NotFound", f"no route for {method} {path}")
        if info.namespaced and len(parts) > 1 and not ns:
            raise _Fail(404, "NotFound", f"{info.plural} are namespaced: use /api/v1/namespaces/NS/{info.plural}")
        if len(parts) == 1:
            if watch:
                return self._watch(info, ns, request)
            if method == "GET":
                return self._list(info, ns, request)
            if method == "POST":
                return self._create(info, ns or "default", self._body(request))
            raise _Fail(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        return self._item(info, ns, parts[1], parts[2] if len(parts) == 3 else "", request)

    @staticmethod
    def _body(request: httpx.Request) -> Obj:
        try:
            body = msgspec.json.decode(request.content)
        except msgspec.DecodeError as exc:
            raise _Fail(400, "BadRequest", f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _Fail(400, "BadRequest", "request body must be a JSON object")
        return body

    @staticmethod
    def _validate(info: KindInfo, obj: Obj) -> None:
        try:
            decode_object(obj, info)
        except ValidationError as exc:
            causes = [{"field": e.path, "message": e.message, "reason": "FieldValueInvalid"} for e in exc.errors]
            name = (obj.get("metadata") or {}).get("name", "")
            raise _Fail(422, "Invalid", f'{info.kind} "{name}" is invalid: {exc.errors[0]}', causes) from None

    def _matching(self, info: KindInfo, ns: str, request: httpx.Request) -> Callable[[Obj], bool]:
        params = request.url.params
        try:
            labels = parse_selector(params.get("labelSelector", ""))
        except ValueError as exc:
            raise _Fail(400, "BadRequest", f"labelSelector: {exc}") from None
        fields = _field_matcher(params.get("fieldSelector", ""))
        return lambda obj: (obj["kind"] == info.kind and (not ns or obj["metadata"].get("namespace") == ns)
                            and labels.matches(obj["metadata"].get("labels") or {}) and fields(obj))

    def _list(self, info: KindInfo, ns: str, request: httpx.Request) -> httpx.Response:
        match = self._matching(info, ns, request)
        items = [o for (plural, _, _), o in sorted(self.objects.items()) if plural == info.plural and match(o)]
        return httpx.Response(200, json={"apiVersion": "shoal/v1", "kind": "List", "items": items,
                                         "metadata": {"resourceVersion": str(self.revision)}})

    def _watch(self, info: KindInfo, ns: str, request: httpx.Request) -> httpx.Response:
        match = self._matching(info, ns, request)
        rv = request.url.params.get("resourceVersion", "")
        if rv and int(rv) < self.compacted:
            expired = _Fail(410, "Expired", f"resourceVersion {rv} is too old; re-list").status
            return httpx.Response(200, content=msgspec.json.encode({"type": "ERROR", "object": expired}) + b"\n")
        if rv:
            events = [(t, o) for r, t, o in self.log if r > int(rv) and match(o)]
        else:
            events = [("ADDED", o) for o in self.objects.values() if match(o)]
        lines = b"".join(msgspec.json.encode({"type": t, "object": o}) + b"\n" for t, o in events)
        return httpx.Response(200, content=lines, headers={"Content-Type": "application/x-ndjson"})

    def _create(self, info: KindInfo, ns: str, obj: Obj) -> httpx.Response:
        self._validate(info, obj)
        name = obj["metadata"]["name"]
        if (info.plural, ns if info.namespaced else "", name) in self.objects:
            raise _Fail(409, "AlreadyExists", f'{info.plural} "{name}" already exists')
        return httpx.Response(201, json=self._store(info, ns if info.namespaced else "", obj, "ADDED"))

    def _item(self, info: KindInfo, ns: str, name: str, sub: str, request: httpx.Request) -> httpx.Response:
        key = (info.plural, ns, name)
        current = self.objects.get(key)
        method = request.method
        if method == "PATCH" and request.headers.get("Content-Type") == "application/apply-patch+json":
            return self._apply(info, ns, name, current, self._body(request))
        if current is None:
            raise _Fail(404, "NotFound", f'{info.plural} "{name}" not found')
        if method == "GET" and sub == "scale" and info.kind == "Deployment":
            return httpx.Response(200, json=_scale(current))
        if method == "GET":
            return httpx.Response(200, json=current)
        if method == "DELETE" and not sub:
            self._store(info, ns, current, "DELETED")
            return httpx.Response(200, json=current)
        if method not in ("PUT", "PATCH"):
            raise _Fail(405, "MethodNotAllowed", f"{method} is not allowed here")
        body = self._body(request)
        if method == "PATCH":
            if request.headers.get("Content-Type") != "application/merge-patch+json":
                raise _Fail(415, "UnsupportedMediaType", "use application/merge-patch+json or apply-patch+json")
            updated = merge_patch(current, body)
        elif sub == "status":
            updated = {**current, "status": body.get("status") or {}}
        elif sub == "scale" and info.kind == "Deployment":
            replicas = (body.get("spec") or {}).get("replicas")
            updated = merge_patch(current, {"spec": {"replicas": replicas}})
        else:
            wanted = str((body.get("metadata") or {}).get("resourceVersion") or "")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise _Fail(409, "Conflict", f'{info.plural} "{name}": the object has been modified; '
                                             "read it again and retry")
            updated = body
        updated = merge_patch(updated, {"metadata": {"name": name, "uid": current["metadata"]["uid"],
                                                     "creationTimestamp": current["metadata"]["creationTimestamp"]}})
        self._validate(info, updated)
        stored = self._store(info, ns, updated, "MODIFIED")
        return httpx.Response(200, json=_scale(stored) if sub == "scale" else stored)

    def _apply(self, info: KindInfo, ns: str, name: str, current: Obj | None, body: Obj) -> httpx.Response:
        if current is None:
            self._validate(info, body)
            stored = self._store(info, ns, {**body, "metadata": {**body["metadata"], "name": name}}, "ADDED")
            return httpx.Response(201, json=stored, headers={"X-Shoal-Apply": "created"})
        updated = merge_patch(current, {k: v for k, v in body.items() if k != "metadata"})
        updated["metadata"] = merge_patch(current["metadata"], {k: v for k, v in body["metadata"].items()
                                                                if k not in ("resourceVersion", "uid")})
        if updated == current:
            return httpx.Response(200, json=current, headers={"X-Shoal-Apply": "unchanged"})
        self._validate(info, updated)
        stored = self._store(info, ns, updated, "MODIFIED")
        return httpx.Response(200, json=stored, headers={"X-Shoal-Apply": "configured"})


def _plural_of(obj: Obj) -> str:
    return next(info.plural for info in BY_PLURAL.values() if info.kind == obj.get("kind"))


def _scale(deploy: Obj) -> Obj:
    return {"apiVersion": "shoal/v1", "kind": "Scale", "metadata": {"name": deploy["metadata"]["name"],
                                                                    "namespace": deploy["metadata"]["namespace"]},
            "spec": {"replicas": (deploy.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (deploy.get("status") or {}).get("replicas", 0)}}
