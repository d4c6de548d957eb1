"""Bearer-token authentication as a raw ASGI middleware in front of every route.

Public paths (health, version, OpenAPI) pass; anything else without a known token gets a
401 Status that reveals nothing about the resource. Tokens map to a subject name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from shoal.model import Status, StatusDetails

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/version", "/openapi.json", "/cacerts"})
# Paths that authenticate themselves (the join token is checked by the join route).
SELF_AUTHENTICATING = frozenset({"/api/v1/join"})
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

_UNAUTHORIZED = msgspec.json.encode(Status(code=401, reason="Unauthorized", message="Unauthorized",
                                           details=StatusDetails()))


TokenLookup = Callable[[str], str | None]


class TokenAuth:
    def __init__(self, app: ASGIApp, lookup: TokenLookup) -> None:
        self.app = app
        self.lookup = lookup  # token → subject ("admin", "node:gw-1"), None when unknown

    def _subject(self, scope: Scope) -> str | None:
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    return None
                return self.lookup(token.strip())
        return None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path in SELF_AUTHENTICATING:
            await self.app(scope, receive, send)
            return
        subject = self._subject(scope)
        if subject is None:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"www-authenticate", b'Bearer realm="shoal"'),
                                    (b"content-length", str(len(_UNAUTHORIZED)).encode())]})
            await send({"type": "http.response.body", "body": _UNAUTHORIZED})
            return
        scope.setdefault("state", {})["subject"] = subject
        await self.app(scope, receive, send)
