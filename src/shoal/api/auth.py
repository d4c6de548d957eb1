"""Authentication as a raw ASGI middleware in front of every route: bearer tokens and client certificates.

Public paths (health, version, OpenAPI) pass; anything else without a known credential gets a
401 Status that reveals nothing about the resource. A bearer token, when sent, decides alone
(``lookup``: token → subject). Without one, a client certificate the TLS layer verified against
the cluster CA is asked about (``peer``: ``getpeercert()`` fields → subject), read from the ASGI
TLS extension ``scope["extensions"]["tls"]["client_cert_fields"]`` that the server's HTTP protocol
fills in. It must not parse certificates or know which server runs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
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
PeerLookup = Callable[[Mapping[str, Any]], str | None]
TLS_EXTENSION = "tls"
CLIENT_CERT_FIELDS = "client_cert_fields"  # ssl getpeercert() of the verified client certificate


def peer_fields(scope: Scope) -> Mapping[str, Any] | None:
    """The verified client certificate of this request's connection, or None."""
    tls = (scope.get("extensions") or {}).get(TLS_EXTENSION) or {}
    fields = tls.get(CLIENT_CERT_FIELDS)
    return fields if isinstance(fields, Mapping) and fields else None


class TokenAuth:
    def __init__(self, app: ASGIApp, lookup: TokenLookup, peer: PeerLookup | None = None) -> None:
        self.app = app
        self.lookup = lookup  # token → subject ("admin", "node:gw-1"), None when unknown
        self.peer = peer  # client certificate → subject ("node:gw-1"), None when not a current node cert

    def _subject(self, scope: Scope) -> str | None:
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    return None
                return self.lookup(token.strip())
        if self.peer is not None:
            fields = peer_fields(scope)
            if fields is not None:
                return self.peer(fields)
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
