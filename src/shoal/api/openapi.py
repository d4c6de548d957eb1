"""The OpenAPI 3.1 document, generated from the model registry and the msgspec schemas.

Every kind gets its list/create/read/replace/patch/delete operations (and status/scale where
they exist); watches are separate operations tagged ``streaming``, so a schema-driven client
never opens a stream by accident. Every documented error response is a Status.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shoal import __version__
from shoal.model import KINDS, KindInfo, Status

_JSON = "application/json"
_ERRORS = {"400": "malformed request", "401": "missing or unknown token", "404": "not found",
           "409": "already exists or changed since read", "415": "unsupported media type",
           "422": "invalid object (field causes in details)"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error_responses(*codes: str) -> dict[str, Any]:
    return {code: {"description": _ERRORS[code], "content": {_JSON: {"schema": _ref("Status")}}}
            for code in codes}


def _ok(schema: dict[str, Any], code: str = "200", description: str = "OK") -> dict[str, Any]:
    return {code: {"description": description, "content": {_JSON: {"schema": schema}}}}


def parameter(name: str, where: str = "path", description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": where == "path",
                             "schema": {"type": "string"}}
    if where == "path":
        param["schema"] = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 63}
    if description:
        param["description"] = description
    return param


def _list_schema(kind: str) -> dict[str, Any]:
    return {"type": "object", "required": ["apiVersion", "kind", "items", "metadata"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"const": "List"},
                           "metadata": {"type": "object",
                                        "properties": {"resourceVersion": {"type": "string"}}},
                           "items": {"type": "array", "items": _ref(kind)}}}


def _operations(info: KindInfo, base: str, params: list[dict[str, Any]], paths: dict[str, Any]) -> None:
    kind, tag = info.kind, info.plural
    selectors = [parameter("labelSelector", "query", "e.g. app=web,tier!=db"),
                 parameter("fieldSelector", "query", "e.g. spec.nodeName=gw-1")]
    scope = "namespaced" if params else "cluster"
    paths[base] = {
        "parameters": params,
        "get": {"operationId": f"list{kind}{scope.title()}", "tags": [tag], "summary": f"List {info.plural}",
                "parameters": selectors,
                "responses": {**_ok(_list_schema(kind)), **error_responses("400", "401", "404")}},
        "post": {"operationId": f"create{kind}{scope.title()}", "tags": [tag], "summary": f"Create a {info.singular}",
                 "requestBody": {"required": True, "content": {_JSON: {"schema": _ref(kind)}}},
                 "responses": {**_ok(_ref(kind), "201", "Created"),
                               **error_responses("400", "401", "404", "409", "415", "422")}},
    }
    item = f"{base}/{{name}}"
    named = [*params, parameter("name")]
    patch_body = {"required": True, "content": {
        "application/merge-patch+json": {"schema": {"type": "object"}},
        "application/apply-patch+json": {"schema": {"type": "object"}}}}
    paths[item] = {
        "parameters": named,
        "get": {"operationId": f"read{kind}{scope.title()}", "tags": [tag],
                "responses": {**_ok(_ref(kind)), **error_responses("401", "404")}},
        "put": {"operationId": f"replace{kind}{scope.title()}", "tags": [tag],
                "requestBody": {"required": True, "content": {_JSON: {"schema": _ref(kind)}}},
                "responses": {**_ok(_ref(kind)), **error_responses("400", "401", "404", "409", "415", "422")}},
        "patch": {"operationId": f"patch{kind}{scope.title()}", "tags": [tag],
                  "description": "merge patch (RFC 7386) or server-side apply (creates when absent)",
                  "parameters": [parameter("fieldManager", "query", "who is applying, e.g. shoal-cli")],
                  "requestBody": patch_body,
                  "responses": {**_ok(_ref(kind)), **_ok(_ref(kind), "201", "Created by apply"),
                                **error_responses("400", "401", "404", "409", "415", "422")}},
        "delete": {"operationId": f"delete{kind}{scope.title()}", "tags": [tag],
                   "responses": {**_ok(_ref(kind)), **error_responses("401", "404", "409", "422")}},
    }
    if info.has_status:
        paths[f"{item}/status"] = {
            "parameters": named,
            "get": {"operationId": f"read{kind}Status{scope.title()}", "tags": [tag],
                    "responses": {**_ok(_ref(kind)), **error_responses("401", "404")}},
            "put": {"operationId": f"replace{kind}Status{scope.title()}", "tags": [tag],
                    "requestBody": {"required": True, "content": {_JSON: {"schema": _ref(kind)}}},
                    "responses": {**_ok(_ref(kind)), **error_responses("400", "401", "404", "409", "415", "422")}},
        }
    watch = base.replace("/api/v1/", "/api/v1/watch/", 1)
    paths[watch] = {
        "parameters": params,
        "get": {"operationId": f"watch{kind}{scope.title()}", "tags": [tag, "streaming"],
                "summary": f"Watch {info.plural}: NDJSON events, replayed from resourceVersion then live",
                "parameters": [*selectors, parameter("resourceVersion", "query")],
                "responses": {"200": {"description": "a stream of watch events, one JSON object per line",
                                      "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                              **error_responses("400", "401", "404")}},
    }


def _scale_paths(paths: dict[str, Any]) -> None:
    scale = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"const": "Scale"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0}}},
        "status": {"type": "object"}}}
    params = [parameter("namespace"), parameter("name")]
    paths["/api/v1/namespaces/{namespace}/deployments/{name}/scale"] = {
        "parameters": params,
        "get": {"operationId": "readDeploymentScale", "tags": ["deployments"],
                "responses": {**_ok(scale), **error_responses("401", "404")}},
        "put": {"operationId": "replaceDeploymentScale", "tags": ["deployments"],
                "requestBody": {"required": True, "content": {_JSON: {"schema": scale}}},
                "responses": {**_ok(scale), **error_responses("400", "401", "404", "409", "415", "422")}},
    }


def _node_paths(paths: dict[str, Any]) -> None:
    empty = {"204": {"description": "lease renewed"}}
    paths["/api/v1/nodes/{name}/heartbeat"] = {
        "parameters": [parameter("name")],
        "post": {"operationId": "heartbeatNode", "tags": ["nodes"],
                 "responses": {**empty, **error_responses("401", "404")}}}
    paths["/api/v1/heartbeats"] = {
        "post": {"operationId": "heartbeatNodes", "tags": ["nodes"],
                 "requestBody": {"required": True, "content": {_JSON: {"schema": {
                     "type": "object", "required": ["nodes"],
                     "properties": {"nodes": {"type": "array", "items": {"type": "string"}}}}}}},
                 "responses": {**empty, **error_responses("400", "401", "415", "422")}}}


def _public_paths(paths: dict[str, Any]) -> None:
    text = {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}}
    for path, op in (("/healthz", "healthz"), ("/readyz", "readyz")):
        paths[path] = {"get": {"operationId": op, "tags": ["health"], "security": [], "responses": text}}
    paths["/version"] = {"get": {"operationId": "version", "tags": ["health"], "security": [],
                                 "responses": _ok({"type": "object", "properties": {
                                     "version": {"type": "string"}, "apiVersion": {"type": "string"}}})}}


def build_openapi() -> dict[str, Any]:
    from shoal.api.sd import sd_paths
    from shoal.api.secretkeys import secret_key_paths
    from shoal.api.tunnel import tunnel_paths  # tunnel imports this module's helpers
    from shoal.api.usage import usage_paths

    _, components = msgspec.json.schema_components([info.cls for info in KINDS] + [Status],
                                                   ref_template="#/components/schemas/{name}")
    paths: dict[str, Any] = {}
    for info in KINDS:
        if info.namespaced:
            _operations(info, f"/api/v1/namespaces/{{namespace}}/{info.plural}", [parameter("namespace")], paths)
            paths[f"/api/v1/{info.plural}"] = {"get": {
                "operationId": f"list{info.kind}AllNamespaces", "tags": [info.plural],
                "parameters": [parameter("labelSelector", "query"), parameter("fieldSelector", "query")],
                "responses": {**_ok(_list_schema(info.kind)), **error_responses("400", "401")}}}
        else:
            _operations(info, f"/api/v1/{info.plural}", [], paths)
    _scale_paths(paths)
    _node_paths(paths)
    _public_paths(paths)
    tunnel_paths(paths)
    usage_paths(paths)
    sd_paths(paths)
    secret_key_paths(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "shoal", "version": __version__,
                 "description": "The shoal API: desired state of an edge fleet, Kubernetes-shaped."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
