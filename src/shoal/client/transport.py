"""What the sync and async clients share about HTTP: headers, TLS, timeouts and turning httpx's
transport exceptions into ``ServerUnreachable`` with a hint.

TLS is the config's ``ssl_context()``: the CA that verifies the server and, for a node, its
client certificate (mutual TLS; a renewed certificate is loaded into the same context, so the
client's new connections present it). The bearer token is sent only when the config has one and no client certificate.

It must not know any REST path; those live in ``calls``.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from shoal import __version__
from shoal.client.config import ClientConfig
from shoal.client.errors import ServerUnreachable

DEFAULT_TIMEOUT = 30.0
IDLE_WATCH_LIMIT = 90.0  # bookmarks arrive at least every 30 s; three missed ones mean a dead stream


def client_options(config: ClientConfig, timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client``/``httpx.AsyncClient`` (HTTP/1.1 with keep-alive)."""
    headers = {"User-Agent": f"shoal-client/{__version__}", "Accept": "application/json"}
    if config.token and config.client_cert is None:  # a node with a certificate authenticates with it
        headers["Authorization"] = f"Bearer {config.token}"
    return {
        "base_url": config.server,
        "headers": headers,
        "verify": config.ssl_context(),
        "timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        "limits": httpx.Limits(max_keepalive_connections=20, keepalive_expiry=30.0),
        "follow_redirects": False,
        "trust_env": False,
    }


def watch_timeout(timeout: float | None) -> httpx.Timeout:
    read = timeout if timeout is not None else IDLE_WATCH_LIMIT
    return httpx.Timeout(10.0, read=max(read, 0.001))


def unreachable(config: ClientConfig, exc: httpx.TransportError) -> ServerUnreachable:
    where = config.source or "the client config"
    text = str(exc) or type(exc).__name__
    if _is_cert_failure(exc):
        return ServerUnreachable(config.server, f"TLS verification failed ({text})",
                                 f"the server's certificate is not signed by the ca in {where}; "
                                 "use the admin.yaml of this server")
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachable(config.server, f"timed out ({type(exc).__name__})",
                                 "the server is up but not answering; check its log and load")
    return ServerUnreachable(config.server, text,
                             f"is `shoal server` running there? check `server:` in {where}")


def _is_cert_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
