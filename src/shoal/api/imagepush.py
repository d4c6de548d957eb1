"""Image push to a node: an image archive from a user reaches an (air-gapped) node through the server.

``POST /api/v1/nodes/NODE/images?image=NAME`` takes an image archive (``shoal image save``'s OCI
layout tar) as its streamed body and spools it to a temp file, refusing archives past the server's
limit (``$SHOAL_IMAGE_PUSH_MAX_BYTES``, default 4 GiB) with 413 before or while it arrives. Then an
``image-load`` frame goes down the node's tunnel; the node's agent fetches the archive with its own
``GET /api/v1/nodes/NODE/images/ID`` (only that node's credentials may), loads it into its image
store and answers with NDJSON lines ending in ``{"loaded": [...]}`` or ``{"error": ...}``, which are
relayed to the user as the answer to the POST. The spooled file is removed once the node took it,
once the request ends either way, or after a timeout. Admin credentials upload; it must not touch the
store except to check the Node exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from shoal.api.errors import ApiError
from shoal.api.resources import ResourceAPI, kind_for
from shoal.api.tunnel import TunnelHub, _only, _subject

__all__ = ["MAX_BYTES_ENV", "ImageUploads", "image_push_paths", "image_push_routes", "max_push_bytes"]

MAX_BYTES_ENV = "SHOAL_IMAGE_PUSH_MAX_BYTES"
DEFAULT_MAX_BYTES = 4 << 30
UPLOAD_TTL_SECONDS = 600.0  # a node that has not fetched its upload by then will not get it
_CHUNK = 1 << 20


def max_push_bytes(env: dict[str, str] | None = None) -> int:
    """The largest archive the server spools: ``$SHOAL_IMAGE_PUSH_MAX_BYTES`` or 4 GiB."""
    raw = (os.environ if env is None else env).get(MAX_BYTES_ENV, "")
    if not raw:
        return DEFAULT_MAX_BYTES
    if not raw.isdigit() or int(raw) == 0:
        raise ValueError(f"${MAX_BYTES_ENV}={raw!r} is not a positive whole number of bytes")
    return int(raw)


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


class _Upload:
    def __init__(self, upload_id: str, node: str, path: Path) -> None:
        self.id = upload_id
        self.node = node
        self.path = path
        self.expiry: asyncio.TimerHandle | None = None


class ImageUploads:
    """Spooled archives waiting for their node, by id; one per server process."""

    def __init__(self, max_bytes: int, ttl: float = UPLOAD_TTL_SECONDS, spool: Path | None = None) -> None:
        """``spool``: a directory of its own (left-overs of a previous run are removed), else the temp dir."""
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.spool = spool
        self._uploads: dict[str, _Upload] = {}
        if spool is not None:
            spool.mkdir(parents=True, exist_ok=True)
            for stale in spool.glob("shoal-image-push-*.tar"):
                stale.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._uploads)

    def too_large(self, size: int) -> ApiError:
        return ApiError(413, f"the image archive is {_human(size)}; this server takes at most "
                             f"{_human(self.max_bytes)} (raise ${MAX_BYTES_ENV} on the server, or push a smaller "
                             "image)")

    async def receive(self, node: str, chunks: AsyncIterator[bytes]) -> _Upload:
        """Spool ``chunks`` to a temp file; 413 (and nothing left behind) past the limit."""
        fd, name = tempfile.mkstemp(prefix="shoal-image-push-", suffix=".tar", dir=self.spool)
        upload = _Upload(secrets.token_urlsafe(24), node, Path(name))
        try:
            with os.fdopen(fd, "wb") as out:
                size, pending = 0, bytearray()
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self.too_large(size)
                    pending += chunk
                    if len(pending) >= _CHUNK:
                        await asyncio.to_thread(out.write, bytes(pending))
                        pending.clear()
                await asyncio.to_thread(out.write, bytes(pending))
            if size == 0:
                raise ApiError(400, "the request body is empty; send the image archive (shoal image save) as the body")
        except BaseException:
            upload.path.unlink(missing_ok=True)
            raise
        self._uploads[upload.id] = upload
        upload.expiry = asyncio.get_running_loop().call_later(self.ttl, self.discard, upload.id)
        return upload

    def for_node(self, node: str, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise ApiError(404, f'node {node} has no image upload "{upload_id}" waiting (it was taken, or it '
                                "expired)")
        if upload.node != node:
            raise ApiError(403, f"image upload {upload_id} is addressed to another node, not to {node}",
                           kind="Node", name=node)
        return upload

    def discard(self, upload_id: str) -> None:
        upload = self._uploads.pop(upload_id, None)
        if upload is not None:
            if upload.expiry is not None:
                upload.expiry.cancel()
            upload.path.unlink(missing_ok=True)

    async def send(self, upload_id: str) -> AsyncIterator[bytes]:
        """The archive's bytes; the upload is discarded once all of them went out."""
        upload = self._uploads.get(upload_id)
        if upload is None:  # expired or discarded between the check and the first byte
            return
        with open(upload.path, "rb") as src:
            while chunk := await asyncio.to_thread(src.read, _CHUNK):
                yield chunk
        self.discard(upload_id)


def image_push_routes(hub: TunnelHub, uploads: ImageUploads | None = None) -> list[HTTPRouteHandler]:
    """The user's upload and the agent's fetch, bound to ``hub``."""
    registry = uploads if uploads is not None else ImageUploads(max_push_bytes())

    @post("/api/v1/{plural:str}/{name:str}/images", status_code=200, request_max_body_size=None)
    async def push_image_to_node(request: Request[Any, Any, Any], plural: str, name: str) -> Response[Any]:
        _only(plural, "nodes", "images")
        if _subject(request).startswith("node:"):
            raise ApiError(403, "node credentials cannot push images to nodes; use an admin token")
        resources: ResourceAPI = request.app.state["shoal"].resources
        await resources.get(kind_for("nodes"), None, name)  # 404 for an unknown node
        if not hub.connected(name):
            raise ApiError(503, f"node {name} has no tunnel open (is its agent running?); nothing was uploaded",
                           kind="Node", name=name)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > registry.max_bytes:
            raise registry.too_large(int(declared))
        upload = await registry.receive(name, request.stream())
        try:
            pending = hub.send(name, {"op": "image-load", "upload": upload.id,
                                      "image": request.query_params.get("image") or ""})
        except BaseException:
            registry.discard(upload.id)
            raise
        pending.on_finish.append(lambda: registry.discard(upload.id))
        return await hub.answer_with(pending)

    @get("/api/v1/{plural:str}/{name:str}/images/{upload_id:str}")
    async def fetch_node_image(request: Request[Any, Any, Any], plural: str, name: str, upload_id: str) -> Stream:
        _only(plural, "nodes", "images")
        subject = _subject(request)
        if subject != f"node:{name}":
            raise ApiError(403, f"only node {name}'s own credentials may fetch images pushed to it",
                           kind="Node", name=name)
        upload = registry.for_node(name, upload_id)
        with contextlib.suppress(OSError):
            size = upload.path.stat().st_size
            return Stream(registry.send(upload.id), media_type="application/x-tar",
                          headers={"X-Shoal-Archive-Size": str(size)})
        registry.discard(upload.id)
        raise ApiError(404, f'image upload "{upload_id}" is gone from the server\'s spool')

    return [push_image_to_node, fetch_node_image]


def image_push_paths(paths: dict[str, Any], failures: dict[str, Any]) -> None:
    """The OpenAPI operations of the image push routes."""
    from shoal.api.openapi import error_responses, parameter

    status = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    paths["/api/v1/nodes/{name}/images"] = {
        "parameters": [parameter("name")],
        "post": {"operationId": "pushImageToNode", "tags": ["nodes", "streaming"],
                 "summary": "Load an image archive (shoal image save) into the node's image store through its "
                            'tunnel: NDJSON lines, the last {"loaded": [names]} or {"error": message}',
                 "parameters": [parameter("image", "query", "the image the archive must contain (optional)")],
                 "requestBody": {"content": {"application/x-tar": {"schema": {"type": "string"}}}},
                 "responses": {"200": {"description": "NDJSON progress and result",
                                       "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                               **failures,
                               "413": {"description": f"the archive is past ${MAX_BYTES_ENV}", "content": status}}}}
    paths["/api/v1/nodes/{name}/images/{upload}"] = {
        "parameters": [parameter("name"), {**parameter("upload"), "schema": {"type": "string"}}],
        "get": {"operationId": "fetchNodeImageUpload", "tags": ["nodes", "streaming"],
                "summary": "For the node's agent: the image archive pushed to it",
                "responses": {"200": {"description": "the archive",
                                      "content": {"application/x-tar": {"schema": {"type": "string"}}}},
                              **error_responses("401", "404"),
                              "403": {"description": "not this node's credentials or upload", "content": status}}}}
