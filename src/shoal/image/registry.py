"""Client for the OCI distribution API v2 (pull and push), over httpx.

Owns the HTTP conversation with one registry endpoint (the origin, or a mirror given as
``endpoint``): scheme choice (plain HTTP only for loopback registries, ones listed as insecure, or
an explicit ``http://`` endpoint), TLS settings from registries.yaml (CA file, client certificate,
skip-verify), the login check of ``shoal registry login`` (``GET /v2/`` and its challenge),
the 401 challenge → token/basic retry, manifest GETs with media-type checks and digest
verification, resumable blob downloads into the content store, and blob/manifest uploads. It
must not decide which image to pull nor which endpoint to try (see pull.py), nor unpack anything.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urljoin

import httpx

from shoal.image import mediatypes as mt
from shoal.image.auth import Credentials, authorize, parse_challenge
from shoal.image.content import BlobWriter, ContentStore
from shoal.image.errors import (
    AuthError,
    BlobBusyError,
    DigestMismatchError,
    ImageError,
    ImageNotFoundError,
    RegistryError,
    RegistryUnavailableError,
)
from shoal.image.fetch import HttpStatusError, direct_possible, fetch_into
from shoal.image.oci import DecodedManifest, Descriptor, decode_manifest, sha256_digest, verify_bytes
from shoal.image.reference import is_loopback
from shoal.image.registryconfig import TLSSettings

ProgressFn = Callable[[str, int, int], None]
MAX_MANIFEST_BYTES = 4 << 20
_DOWNLOAD_ATTEMPTS = 3
_BUSY_WAIT_S = 1800


def _api_host(registry: str) -> str:
    return "registry-1.docker.io" if registry == "docker.io" else registry


def _verify(tls: TLSSettings | None, default: bool) -> bool | ssl.SSLContext:
    """httpx's ``verify``: a context for a custom CA or client certificate, False to skip checks."""
    if tls is None:
        return default
    if tls.insecure_skip_verify:
        return False
    if not (tls.ca_file or tls.cert_file):
        return default
    try:
        ctx = ssl.create_default_context(cafile=tls.ca_file) if tls.ca_file else httpx.create_ssl_context()
        if tls.cert_file and tls.key_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise RegistryError(f"TLS files for this registry cannot be loaded: {exc}") from None
    return ctx


class _LazyTLSTransport(httpx.AsyncBaseTransport):
    """For plain-HTTP registries: the verifying TLS transport (its CA bundle costs ~40 ms to load)
    is only built if a redirect actually leads to an https URL."""

    def __init__(self, verify: bool | ssl.SSLContext) -> None:
        self._verify = verify
        self._plain = httpx.AsyncHTTPTransport(verify=False)  # never sees an https URL
        self._tls: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            return await self._plain.handle_async_request(request)
        if self._tls is None:
            self._tls = httpx.AsyncHTTPTransport(verify=self._verify)
        return await self._tls.handle_async_request(request)

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._tls is not None:
            await self._tls.aclose()


class RegistryClient:
    """One registry; use as ``async with RegistryClient("127.0.0.1:5000") as client: ...``."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        insecure: Iterable[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
        chunk_size: int = 16 << 20,
        endpoint: str | None = None,
        tls: TLSSettings | None = None,
    ) -> None:
        """``endpoint`` (``scheme://host[:port]``, e.g. a mirror) overrides where ``registry`` is asked;
        ``tls`` (from registries.yaml) sets CA, client certificate or skipping verification."""
        insecure = set(insecure)
        plain = is_loopback(registry) or registry in insecure
        self.registry, self.chunk_size = registry, chunk_size
        self.base = endpoint.rstrip("/") if endpoint else f"{'http' if plain else 'https'}://{_api_host(registry)}"
        self._credentials = credentials
        self._auth: dict[str, str] = {}
        self._timeout = timeout
        self._verify: bool | ssl.SSLContext = _verify(tls, registry not in insecure)
        self._ssl: ssl.SSLContext | None = None
        self._direct = transport is None and direct_possible(self.base)
        if transport is None and self.base.startswith("http:"):
            transport = _LazyTLSTransport(self._verify)
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=True,
            verify=self._verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _send(
        self,
        method: str,
        url: str,
        scope: str,
        *,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = urljoin(self.base + "/", url)
        for attempt in range(2):
            h = dict(headers or {})
            if scope in self._auth:
                h["Authorization"] = self._auth[scope]
            request = self._client.build_request(method, url, headers=h, content=content, params=params)
            try:
                resp = await self._client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise RegistryUnavailableError(
                    f"cannot reach registry {self.registry} at {self.base}: {exc or type(exc).__name__}"
                ) from None
            if resp.status_code != 401:
                return resp
            await resp.aclose()
            if attempt == 1:
                break
            challenge = parse_challenge(resp.headers.get("www-authenticate", "Basic"))
            self._auth[scope] = await authorize(
                self._client, self.registry, challenge, scope, self._credentials
            )
        if self._credentials is None:
            raise AuthError(
                f"registry {self.registry} requires a login for {scope}: run `shoal registry login "
                f"{self.registry}` or pass --creds USER:PASSWORD"
            )
        raise AuthError(
            f"registry {self.registry}: credentials for user {self._credentials.username!r} "
            f"were rejected for {scope}"
        )

    async def check_login(self) -> bool:
        """GET /v2/ and answer its challenge with the credentials, as ``docker login`` does.

        Returns False if the registry needs no login at all, True if the credentials were accepted;
        raises AuthError naming the user when they are wrong.
        """
        url = self.base + "/v2/"
        try:
            resp = await self._client.get(url)
            if resp.status_code == 200:
                return False
            if resp.status_code != 401:
                raise self._fail(resp, f"login check (GET {url})")
            challenge = parse_challenge(resp.headers.get("www-authenticate", "Basic"))
            header = await authorize(self._client, self.registry, challenge, "", self._credentials)
            resp = await self._client.get(url, headers={"Authorization": header})
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(
                f"cannot reach registry {self.registry} at {self.base}: {exc or type(exc).__name__}"
            ) from None
        if resp.status_code in (401, 403):
            who = self._credentials.username if self._credentials else ""
            raise AuthError(f"registry {self.registry}: login failed: wrong username or password for user {who!r}")
        if resp.status_code != 200:
            raise self._fail(resp, f"login check (GET {url})")
        return True

    def _fail(self, resp: httpx.Response, what: str) -> ImageError:
        detail = ""
        try:
            errors = resp.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError):
            detail = resp.text[:200] if not resp.is_stream_consumed or resp.is_closed else ""
        suffix = f" ({detail})" if detail else ""
        if resp.status_code == 404:
            return ImageNotFoundError(f"{what} not found in registry {self.registry}{suffix}")
        if resp.status_code == 403:
            return AuthError(f"{what}: registry {self.registry} denied access (HTTP 403){suffix}")
        return RegistryError(f"{what}: registry {self.registry} answered HTTP {resp.status_code}{suffix}")

    # -- pull --------------------------------------------------------------------------------
    async def get_manifest(self, repository: str, obj: str) -> tuple[DecodedManifest, bytes, str]:
        """Fetch a manifest or index by tag or digest; returns (decoded, raw body, digest)."""
        what = (
            f"manifest {repository}:{obj}"
            if not obj.startswith("sha256:")
            else f"manifest {repository}@{obj}"
        )
        resp = await self._send(
            "GET",
            f"/v2/{repository}/manifests/{obj}",
            f"repository:{repository}:pull",
            stream=True,
            headers={"Accept": mt.ACCEPT},
        )
        try:
            if resp.status_code != 200:
                await resp.aread()
                raise self._fail(resp, what)
            body = b""
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise RegistryError(f"{what}: larger than {MAX_MANIFEST_BYTES} bytes; refusing it")
        finally:
            await resp.aclose()
        digest = sha256_digest(body)
        if obj.startswith("sha256:"):
            verify_bytes(body, obj, what)
        elif (announced := resp.headers.get("docker-content-digest")) and announced != digest:
            raise DigestMismatchError(f"{what}: body hashes to {digest} but registry announced {announced}")
        return decode_manifest(body, resp.headers.get("content-type"), what), body, digest

    async def fetch_blob(
        self, repository: str, desc: Descriptor, store: ContentStore, progress: ProgressFn | None = None
    ) -> None:
        """Download a blob into ``store``, resuming a partial download, verifying size and digest."""
        for attempt in range(_DOWNLOAD_ATTEMPTS):
            try:
                await self._fetch_once(repository, desc, store, progress)
                return
            except (RegistryUnavailableError, DigestMismatchError):
                if attempt == _DOWNLOAD_ATTEMPTS - 1:
                    raise

    async def _fetch_once(
        self, repository: str, desc: Descriptor, store: ContentStore, progress: ProgressFn | None
    ) -> None:
        what = f"blob {desc.digest} of {repository}"
        deadline = time.monotonic() + _BUSY_WAIT_S
        while True:
            if store.has(desc.digest):
                return
            try:
                writer = store.writer(desc.digest, desc.size, blocking=False)
                break
            except BlobBusyError:
                if time.monotonic() > deadline:
                    raise RegistryUnavailableError(
                        f"{what}: another pull held it for {_BUSY_WAIT_S}s"
                    ) from None
                await asyncio.sleep(0.05)
        if store.has(desc.digest):
            writer.abort()
            return
        committed = False
        try:
            if not (self._direct and await self._fetch_direct(repository, desc, writer, progress, what)):
                await self._fetch_httpx(repository, desc, writer, progress, what)
            await asyncio.to_thread(writer.commit)
            committed = True
        finally:
            if not committed:
                writer.close()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        return self._ssl

    async def _fetch_direct(
        self, repository: str, desc: Descriptor, writer: BlobWriter, progress: ProgressFn | None, what: str
    ) -> bool:
        """Download through fetch.py in a worker thread; False if the httpx path must do it (401)."""
        loop = asyncio.get_running_loop()

        def report(offset: int) -> None:
            if progress:
                loop.call_soon_threadsafe(progress, desc.digest, offset, desc.size)

        stop = threading.Event()
        try:
            await asyncio.to_thread(
                fetch_into,
                urljoin(self.base + "/", f"/v2/{repository}/blobs/{desc.digest}"),
                writer,
                authorization=self._auth.get(f"repository:{repository}:pull"),
                timeout=self._timeout,
                ssl_context=self._ssl_context,
                progress=report if progress else None,
                what=what,
                stop=stop,
            )
        except asyncio.CancelledError:
            stop.set()  # the thread cannot be interrupted; it stops at its next chunk
            raise
        except HttpStatusError as exc:
            if exc.status == 401:
                return False
            raise self._fail(httpx.Response(exc.status, headers=exc.headers, content=exc.body), what) from None
        return True

    async def _fetch_httpx(
        self, repository: str, desc: Descriptor, writer: BlobWriter, progress: ProgressFn | None, what: str
    ) -> None:
        headers = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
        resp = await self._send(
            "GET",
            f"/v2/{repository}/blobs/{desc.digest}",
            f"repository:{repository}:pull",
            stream=True,
            headers=headers,
        )
        try:
            if resp.status_code == 200:
                writer.reset()
            elif resp.status_code != 206 or not resp.headers.get("content-range", "").startswith(
                f"bytes {writer.offset}-"
            ):
                await resp.aread()
                raise self._fail(resp, what)
            if progress:
                progress(desc.digest, writer.offset, desc.size)
            try:
                async for chunk in resp.aiter_bytes(1 << 20):
                    writer.write(chunk)
                    if progress:
                        progress(desc.digest, writer.offset, desc.size)
            except httpx.HTTPError as exc:
                raise RegistryUnavailableError(
                    f"{what}: download interrupted at byte {writer.offset}: {exc}"
                ) from None
        finally:
            await resp.aclose()

    # -- push --------------------------------------------------------------------------------
    async def blob_exists(self, repository: str, digest: str) -> bool:
        resp = await self._send(
            "HEAD", f"/v2/{repository}/blobs/{digest}", f"repository:{repository}:pull,push"
        )
        if resp.status_code in (200, 307):
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, f"blob {digest} of {repository}")

    async def upload_blob(
        self, repository: str, desc: Descriptor, store: ContentStore, progress: ProgressFn | None = None
    ) -> None:
        """POST an upload session, then PUT the blob (monolithic) or PATCH it in chunks and PUT."""
        scope = f"repository:{repository}:pull,push"
        what = f"upload of blob {desc.digest} to {repository}"
        resp = await self._send("POST", f"/v2/{repository}/blobs/uploads/", scope)
        if resp.status_code != 202 or "location" not in resp.headers:
            raise self._fail(resp, what)
        location = urljoin(self.base + "/", resp.headers["location"])
        path = store.blob_path(desc.digest)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size > self.chunk_size:
                offset = 0
                while chunk := f.read(self.chunk_size):
                    resp = await self._send(
                        "PATCH",
                        location,
                        scope,
                        content=chunk,
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        },
                    )
                    if resp.status_code != 202:
                        raise self._fail(resp, what)
                    location = urljoin(self.base + "/", resp.headers["location"])
                    offset += len(chunk)
                    if progress:
                        progress(desc.digest, offset, size)
                body = b""
            else:
                body = f.read()
        sep = "&" if "?" in location else "?"
        resp = await self._send(
            "PUT",
            f"{location}{sep}digest={desc.digest}",
            scope,
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        if resp.status_code not in (201, 204):
            raise self._fail(resp, what)
        if progress:
            progress(desc.digest, size, size)

    async def put_manifest(self, repository: str, tag_or_digest: str, body: bytes, media_type: str) -> str:
        resp = await self._send(
            "PUT",
            f"/v2/{repository}/manifests/{tag_or_digest}",
            f"repository:{repository}:pull,push",
            content=body,
            headers={"Content-Type": media_type},
        )
        if resp.status_code not in (201, 202):
            raise self._fail(resp, f"manifest {repository}:{tag_or_digest}")
        return sha256_digest(body)

    async def raw_get(self, path: str, scope: str) -> Any:
        """GET a JSON API document (e.g. ``/v2/_catalog``); used by tools and tests."""
        resp = await self._send("GET", path, scope)
        if resp.status_code != 200:
            raise self._fail(resp, path)
        return resp.json()
