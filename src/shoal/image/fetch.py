"""Fast blob downloads: one blocking HTTP/1.1 connection per blob, run in a worker thread.

Owns the byte path of a layer download. The body is read with ``readinto`` straight into a reused
256 KiB buffer (the socket read, the sha256 update and the file write all release the GIL), so the
parallel downloads of one pull spread over every core instead of queuing behind one asyncio
thread that parses 64 KiB h11 events. Redirects (to a storage backend) are followed, dropping the
``Authorization`` header when the origin changes. Anything that needs the full httpx client (a
401 challenge, an unexpected status) is raised as :class:`HttpStatusError` for the caller
(registry.py) to handle. It must not choose blobs, authenticate, or touch the store beyond the
:class:`~shoal.image.content.BlobWriter` it is given.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.request
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from shoal.image.content import BlobWriter
from shoal.image.errors import RegistryUnavailableError

CHUNK = 256 << 10
_MAX_REDIRECTS = 5
_MAX_ERROR_BODY = 64 << 10
_REDIRECTS = (301, 302, 303, 307, 308)


class HttpStatusError(Exception):
    """The registry answered something other than 200/206 (and not a redirect)."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.headers, self.body = status, headers, body


def direct_possible(base_url: str) -> bool:
    """True unless an HTTP(S) proxy from the environment applies (httpx would use it)."""
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname or ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _connect(url: str, timeout: float, ssl_context: Callable[[], ssl.SSLContext]) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=ssl_context())
    if parts.scheme == "http":
        return http.client.HTTPConnection(host, parts.port, timeout=timeout)
    raise RegistryUnavailableError(f"blob download redirected to unsupported URL {url!r}")


def fetch_into(
    url: str,
    writer: BlobWriter,
    *,
    authorization: str | None,
    timeout: float,
    ssl_context: Callable[[], ssl.SSLContext],
    progress: Callable[[int], None] | None,
    what: str,
    stop: threading.Event | None = None,
) -> None:
    """GET ``url`` into ``writer`` (resuming from ``writer.offset`` with Range); blocking.

    Raises HttpStatusError for a status the caller must interpret, RegistryUnavailableError when
    the connection fails or ends early (the partial file is kept for a resume). Setting ``stop``
    (the pull was cancelled) ends the copy at the next chunk.
    """
    headers = {"Accept-Encoding": "identity", "User-Agent": "shoal"}
    if writer.offset:
        headers["Range"] = f"bytes={writer.offset}-"
    if authorization:
        headers["Authorization"] = authorization
    start = _origin(url)
    for _ in range(_MAX_REDIRECTS + 1):
        conn = _connect(url, timeout, ssl_context)
        try:
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            try:
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise RegistryUnavailableError(f"{what}: cannot reach {parts.netloc}: {exc}") from None
            location = resp.getheader("location")
            if resp.status in _REDIRECTS and location:
                url = urljoin(url, location)
                if _origin(url) != start:
                    headers.pop("Authorization", None)
                continue
            if resp.status == 200:
                writer.reset()
            elif resp.status != 206 or not (resp.getheader("content-range") or "").startswith(
                f"bytes {writer.offset}-"
            ):
                try:
                    body = resp.read(_MAX_ERROR_BODY)
                except (OSError, http.client.HTTPException):
                    body = b""
                raise HttpStatusError(resp.status, resp.getheaders(), body)
            _copy(resp, writer, progress, what, stop or threading.Event())
            return
        finally:
            conn.close()
    raise RegistryUnavailableError(f"{what}: more than {_MAX_REDIRECTS} redirects")


def _copy(
    resp: http.client.HTTPResponse,
    writer: BlobWriter,
    progress: Callable[[int], None] | None,
    what: str,
    stop: threading.Event,
) -> None:
    buf = memoryview(bytearray(CHUNK))
    if progress:
        progress(writer.offset)
    try:
        while n := resp.readinto(buf):
            if stop.is_set():
                raise RegistryUnavailableError(f"{what}: download cancelled at byte {writer.offset}")
            writer.write(buf[:n])
            if progress:
                progress(writer.offset)
    except (OSError, http.client.HTTPException) as exc:
        raise RegistryUnavailableError(f"{what}: download interrupted at byte {writer.offset}: {exc}") from None
    if resp.length:  # Content-Length not reached: the server closed early
        raise RegistryUnavailableError(
            f"{what}: download interrupted at byte {writer.offset}: connection closed by the registry"
        )
