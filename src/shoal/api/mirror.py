"""The registry mirror on the wire: a read-only distribution API v2 in front of :mod:`shoal.image.mirror`.

Routes: ``GET /v2/`` (the API version check), ``GET|HEAD /v2/<registry-host>/<repository>/manifests/<tag
or digest>`` and ``GET|HEAD /v2/<registry-host>/<repository>/blobs/<digest>`` (with ``Range`` for
resumed downloads). The upstream registry is the first path component; containerd's mirror
convention ``/v2/<repository>/...?ns=<registry-host>`` is accepted too. Only the admin and nodes
(``node:NAME`` subjects) may read. :class:`RegistryAuthFront` sits in front of the whole app for
``/v2`` paths: it accepts the shoal token as ``Bearer`` or as the password of HTTP Basic (so any
registry client with a username/password works), lets a node's client certificate through to
``TokenAuth``, and answers anything else with a registry-style 401 and ``WWW-Authenticate: Basic``.
A request may carry ``X-Shoal-Pod: NAMESPACE/NAME``: the upstream credentials then come from that
pod's ``imagePullSecrets`` (Secrets of type ``kubernetes.io/dockerconfigjson``), read by the server
itself, and only when the pod is bound to the asking node. This module must not cache or fetch anything itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get, route
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from shoal.api.auth import ASGIApp, Scope, TokenLookup, peer_fields
from shoal.api.authz import node_of
from shoal.image.auth import Credentials
from shoal.image.errors import AuthError, ImageError, ImageNotFoundError, RegistryError, RegistryUnavailableError
from shoal.image.mirror import CachedBlob, RegistryMirror, credentials_from_docker_config
from shoal.image.oci import check_digest
from shoal.image.reference import parse_reference
from shoal.model import Pod, Secret
from shoal.store.protocol import NotFound, Store

__all__ = ["POD_HEADER", "RegistryAuthFront", "mirror_routes"]

log = logging.getLogger("shoal.api.mirror")

POD_HEADER = "x-shoal-pod"
DOCKER_CONFIG_SECRET = "kubernetes.io/dockerconfigjson"
_API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
_CHALLENGE = b'Basic realm="shoal registry mirror"'
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 20


class MirrorError(Exception):
    """A distribution-API error: HTTP status, registry error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _errors_body(code: str, message: str) -> bytes:
    return msgspec.json.encode({"errors": [{"code": code, "message": message, "detail": None}]})


def _error_response(exc: MirrorError) -> Response[bytes]:
    headers = dict(_API_HEADER)
    if exc.status == 401:
        headers["WWW-Authenticate"] = _CHALLENGE.decode()
    return Response(_errors_body(exc.code, exc.message), status_code=exc.status, media_type="application/json",
                    headers=headers)


def _from_image_error(exc: ImageError, blob: bool) -> MirrorError:
    if isinstance(exc, ImageNotFoundError):
        return MirrorError(404, "BLOB_UNKNOWN" if blob else "MANIFEST_UNKNOWN", str(exc))
    if isinstance(exc, AuthError):
        return MirrorError(403, "DENIED", f"{exc}; give the pod an imagePullSecret for this registry")
    if isinstance(exc, RegistryUnavailableError):
        return MirrorError(503, "UNAVAILABLE", f"{exc}; the mirror has no cached copy")
    if isinstance(exc, RegistryError):
        return MirrorError(502, "UNKNOWN", str(exc))
    return MirrorError(400, "NAME_INVALID", str(exc))


class RegistryAuthFront:
    """ASGI front for ``/v2`` paths: Basic (token as password) → Bearer; anything unknown → registry 401."""

    def __init__(self, app: ASGIApp, lookup: TokenLookup) -> None:
        self.app, self.lookup = app, lookup

    def _token(self, scope: Scope) -> str | None:
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, credential = bytes(value).decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    return credential.strip() or None
                if scheme.lower() == "basic":
                    try:
                        return base64.b64decode(credential.strip(), validate=True).decode().partition(":")[2]
                    except (binascii.Error, UnicodeDecodeError):
                        return None
        return None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v2" or path.startswith("/v2/")):
            await self.app(scope, receive, send)
            return
        token = self._token(scope)
        if token is None and peer_fields(scope) is not None:
            await self.app(scope, receive, send)  # a client certificate: TokenAuth checks it against the CA
            return
        if not token or self.lookup(token) is None:
            body = _errors_body("UNAUTHORIZED", "authentication required: use a shoal node or admin token as "
                                "bearer token, or as the password of basic auth")
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", _CHALLENGE),
                                    (b"docker-distribution-api-version", b"registry/2.0"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"authorization"]
        headers.append((b"authorization", f"Bearer {token}".encode("latin-1")))
        await self.app({**scope, "headers": headers}, receive, send)


def _split(rest: str, ns: str | None) -> tuple[str, str, str, str]:
    """``/HOST/REPO/(manifests|blobs)/REF`` (or ``/REPO/...`` with ``ns``) → (registry, repo, kind, ref)."""
    name, _, ref = rest.strip("/").rpartition("/")
    name, _, kind = name.rpartition("/")
    if kind not in ("manifests", "blobs") or not ref or not name:
        raise MirrorError(404, "NAME_UNKNOWN", f"/v2{rest}: expected /v2/<registry-host>/<repository>/manifests/"
                          "<reference> or .../blobs/<digest>; this mirror is read-only")
    registry, repository = (ns, name) if ns else name.partition("/")[::2]
    try:
        parsed = parse_reference(f"{registry}/{repository}")
    except ImageError as exc:
        raise MirrorError(400, "NAME_INVALID", str(exc)) from None
    if parsed.registry != registry or not repository:
        raise MirrorError(400, "NAME_INVALID", f"/v2{rest}: name the upstream registry first, e.g. "
                          "/v2/registry.example:5000/team/app/manifests/1.0, or pass ?ns=<registry-host>")
    return registry, parsed.repository, kind, ref


async def pod_credentials(store: Store, subject: str, pod_key: str, registry: str) -> Credentials | None:
    """Upstream credentials from the imagePullSecrets of pod ``NAMESPACE/NAME``, bound to the asking node."""
    namespace, _, name = pod_key.partition("/")
    node = node_of(subject)
    try:
        pod = await store.get("Pod", namespace, name)
    except NotFound:
        raise MirrorError(403, "DENIED", f'{POD_HEADER}: pod "{pod_key}" does not exist') from None
    if not isinstance(pod, Pod) or (node is not None and pod.spec.node_name != node):
        raise MirrorError(403, "DENIED", f'{POD_HEADER}: pod "{pod_key}" is not bound to node "{node}"; a node '
                          "may use only the pull secrets of its own pods")
    for ref in pod.spec.image_pull_secrets:
        secret_name = ref.name
        try:
            secret = await store.get("Secret", namespace, secret_name)
        except NotFound:
            log.warning("pod %s: imagePullSecret %s does not exist", pod_key, secret_name)
            continue
        if not isinstance(secret, Secret) or secret.type != DOCKER_CONFIG_SECRET:
            continue
        what = f'secret "{namespace}/{secret_name}" .dockerconfigjson'
        try:
            raw = base64.b64decode(secret.data.get(".dockerconfigjson", ""), validate=True)
            credentials = credentials_from_docker_config(raw, registry, what)
        except binascii.Error:
            raise MirrorError(400, "UNKNOWN", f"{what} is not base64") from None
        except RegistryError as exc:
            raise MirrorError(400, "UNKNOWN", str(exc)) from None
        if credentials is not None:
            return credentials
    return None


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range: bytes=A-B`` → (first, last) inclusive; None for the whole blob; 416 when unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        return None  # a range form we do not serve: the whole blob, as RFC 9110 allows
    first_s, last_s = match.groups()
    if first_s:
        first, last = int(first_s), min(int(last_s) if last_s else size - 1, size - 1)
    else:
        first, last = max(size - int(last_s), 0), size - 1
    if first > last or first >= size:
        raise MirrorError(416, "BLOB_UNKNOWN", f"range {header} is outside the blob's {size} bytes")
    return first, last


async def _file_chunks(path: Path, first: int, count: int) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        f.seek(first)
        while count > 0:
            chunk = await asyncio.to_thread(f.read, min(_CHUNK, count))
            if not chunk:
                return
            count -= len(chunk)
            yield chunk


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing (HEAD answers)


def _blob_response(blob: CachedBlob, method: str, range_header: str | None) -> Response[Any]:
    headers = {**_API_HEADER, "Docker-Content-Digest": blob.digest, "Accept-Ranges": "bytes",
               "ETag": f'"{blob.digest}"'}
    span = _byte_range(range_header, blob.size)
    first, last, status = (0, blob.size - 1, 200) if span is None else (*span, 206)
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{blob.size}"
    headers["Content-Length"] = str(last - first + 1)
    body = _nothing() if method == "HEAD" else _file_chunks(blob.path, first, last - first + 1)
    return Stream(body, status_code=status, media_type="application/octet-stream", headers=headers)


def mirror_routes(mirror: RegistryMirror, store: Store) -> list[HTTPRouteHandler]:
    """The distribution API routes serving ``mirror`` (pull secrets are read from ``store``)."""

    @get("/v2", media_type="application/json", sync_to_thread=False)
    def version_check() -> Response[bytes]:
        return Response(b"{}", media_type="application/json", headers=_API_HEADER)

    @route("/v2/{rest:path}", http_method=["GET", "HEAD"])
    async def serve(request: Request[Any, Any, Any], rest: str) -> Response[Any]:
        subject = str((request.scope.get("state") or {}).get("subject") or "")
        blob = False
        try:
            if subject != "admin" and node_of(subject) is None:
                raise MirrorError(403, "DENIED", f'"{subject}" may not read the registry mirror')
            registry, repository, kind, ref = _split(rest, request.query_params.get("ns"))
            blob = kind == "blobs"
            pod_key = request.headers.get(POD_HEADER)
            credentials = await pod_credentials(store, subject, pod_key, registry) if pod_key else None
            if blob:
                cached = await mirror.blob(registry, repository, check_digest(ref, "blob digest"), credentials)
                return _blob_response(cached, request.method, request.headers.get("range"))
            manifest = await mirror.manifest(registry, repository, ref, credentials)
        except MirrorError as exc:
            return _error_response(exc)
        except ImageError as exc:
            return _error_response(_from_image_error(exc, blob))
        headers = {**_API_HEADER, "Docker-Content-Digest": manifest.digest, "ETag": f'"{manifest.digest}"',
                   "Content-Length": str(len(manifest.body))}
        if request.method == "HEAD":
            return Stream(_nothing(), media_type=manifest.media_type, headers=headers)
        return Response(manifest.body, media_type=manifest.media_type, headers=headers)

    return [version_check, serve]
