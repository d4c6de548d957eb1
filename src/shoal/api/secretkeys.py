"""``POST /api/v1/admin/rotate-secrets-key``: the admin asks for a new secrets encryption key.

The route only checks who asks (the admin token; nodes get 403) and hands over to the injected
``rotate`` (the server's key file owner), answering its summary: the new key id, how many Secret rows
were re-encrypted, which old keys were dropped. It must never answer or log key material or a
Secret's value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from shoal.api.errors import ApiError

__all__ = ["ROTATE_PATH", "secret_key_paths", "secret_key_routes"]

ROTATE_PATH = "/api/v1/admin/rotate-secrets-key"
Rotate = Callable[[], Awaitable[dict[str, Any]]]


def secret_key_routes(rotate: Rotate) -> list[HTTPRouteHandler]:
    @post(ROTATE_PATH, status_code=200)
    async def rotate_key(request: Request[Any, Any, Any]) -> Response[bytes]:
        subject = str((request.scope.get("state") or {}).get("subject") or "")
        if subject != "admin":
            raise ApiError(403, f'"{subject or "anonymous"}" may not rotate the secrets key; use the admin config',
                           reason="Forbidden")
        summary = await rotate()
        return Response(msgspec.json.encode(summary), media_type="application/json")

    return [rotate_key]


def secret_key_paths(paths: dict[str, Any]) -> None:
    """The OpenAPI operation of the rotation route."""
    from shoal.api.openapi import error_responses

    summary = {"type": "object", "properties": {
        "keyId": {"type": "string"}, "secrets": {"type": "integer"}, "events": {"type": "integer"},
        "droppedKeys": {"type": "array", "items": {"type": "string"}}, "keyFile": {"type": "string"}}}
    paths[ROTATE_PATH] = {"post": {
        "operationId": "rotateSecretsKey", "tags": ["admin"],
        "summary": "Add a new primary key for Secrets at rest, re-encrypt every Secret, drop the old keys",
        "responses": {"200": {"description": "rotated", "content": {"application/json": {"schema": summary}}},
                      **error_responses("401"), "403": _status("not the admin"),
                      "503": _status("the store could not re-encrypt; Secrets keep their previous key")}}}


def _status(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}}
