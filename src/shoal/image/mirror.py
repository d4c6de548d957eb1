"""The server's pull-through registry cache: manifests and blobs fetched upstream once, served many times.

Owns the cache policy, free of any HTTP framework (shoal.api.mirror puts it on the wire). Blobs and
manifests live in a :class:`ContentStore` under the server's data dir (``DATA/mirror``) and only
appear there after their digest is verified. Manifests fetched by digest are cached forever; a
tag's digest is trusted for ``manifest_ttl`` seconds, after which it is asked upstream again — and
when the upstream cannot be reached or fails (but not when it refuses or says the tag is gone) the
last known digest is served (stale, logged), so nodes keep getting images through an outage.
Manifest fetches are single-flight too. Each blob has one upstream download in flight however many
requests ask for it (single flight per digest): the download runs in a task the mirror owns, every
request waits for it and then serves the verified file (readers are served once the download has
finished, not while it runs). A failed download fails its waiters; the next request tries again.

Trust model: the cache is shared by the fleet. A tag resolved with credentials is marked private and
is only answered from cache to requests that carry credentials too; blobs are content-addressed
and served to any node of the cluster that names their digest. This module must not know about
HTTP routes, tokens or the store of resources.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from shoal.image.auth import Credentials
from shoal.image.content import ContentStore, atomic_write
from shoal.image.errors import AuthError, RegistryError
from shoal.image.oci import Descriptor, Manifest, check_digest, decode_manifest
from shoal.image.registry import RegistryClient

__all__ = ["CachedBlob", "CachedManifest", "RegistryMirror", "credentials_from_docker_config"]

log = logging.getLogger("shoal.image.mirror")

MANIFEST_TTL_S = 30.0
_V = TypeVar("_V")
_T = TypeVar("_T")
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True, slots=True)
class CachedManifest:
    body: bytes
    media_type: str
    digest: str


@dataclass(frozen=True, slots=True)
class CachedBlob:
    path: Path
    size: int
    digest: str


class _TagEntry(msgspec.Struct, frozen=True):
    digest: str
    fetched_at: float
    private: bool = False


class _Upstream(RegistryClient):
    """The registry client plus the one call the mirror needs that it lacks: a blob's size."""

    async def blob_size(self, repository: str, digest: str) -> int:
        resp = await self._send("HEAD", f"/v2/{repository}/blobs/{digest}", f"repository:{repository}:pull")
        length = resp.headers.get("content-length", "")
        if resp.status_code != 200 or not length.isdigit():
            raise self._fail(resp, f"blob {digest} of {repository}")
        return int(length)


class RegistryMirror:
    """Answer manifest and blob requests for ``registry/repository`` from the cache or upstream."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        insecure: Iterable[str] = (),
        manifest_ttl: float = MANIFEST_TTL_S,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = ContentStore(root)
        self.root = Path(root)
        self._insecure = tuple(insecure)
        self._ttl, self._clock, self._transport = manifest_ttl, clock, transport
        self._media: dict[str, str] = self._load(self.root / "manifest-types.json", dict[str, str])
        self._tags: dict[str, _TagEntry] = self._load(self.root / "tags.json", dict[str, _TagEntry])
        self._sizes: dict[str, int] = {}
        self._flights: dict[str, asyncio.Task[Any]] = {}
        self._clients: dict[tuple[str, Credentials | None], _Upstream] = {}

    @staticmethod
    def _load(path: Path, kind: type[dict[str, _V]]) -> dict[str, _V]:
        try:
            return msgspec.json.decode(path.read_bytes(), type=kind)
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            return {}  # a damaged cache index is refetched, not fatal

    async def aclose(self) -> None:
        for task in self._flights.values():
            task.cancel()
        await asyncio.gather(*self._flights.values(), return_exceptions=True)
        for client in self._clients.values():
            await client.__aexit__()
        self._clients.clear()

    def _client(self, registry: str, credentials: Credentials | None) -> _Upstream:
        key = (registry, credentials)
        if key not in self._clients:
            self._clients[key] = _Upstream(
                registry, credentials=credentials, insecure=self._insecure, transport=self._transport
            )
        return self._clients[key]

    # -- manifests -------------------------------------------------------------------------
    async def manifest(
        self, registry: str, repository: str, reference: str, credentials: Credentials | None = None
    ) -> CachedManifest:
        """The manifest or index ``registry/repository:reference`` (a tag or a digest)."""
        if reference.startswith("sha256:"):
            cached = self._cached_manifest(check_digest(reference))
            if cached is not None:
                return cached
            return await self._once(f"manifest {reference}",
                                    lambda: self._fetch_manifest(registry, repository, reference, credentials))
        key = f"{registry}/{repository}:{reference}"
        entry = self._tags.get(key)
        usable = entry is not None and (not entry.private or credentials is not None)
        if entry is not None and usable and self._clock() - entry.fetched_at < self._ttl:
            cached = self._cached_manifest(entry.digest)
            if cached is not None:
                return cached
        try:
            fetched = await self._once(f"tag {key} {hash(credentials)}",
                                       lambda: self._resolve_tag(registry, repository, reference, credentials))
        except RegistryError as exc:  # unreachable or broken upstream (not a refusal): the last known digest
            stale = self._cached_manifest(entry.digest) if entry is not None and usable else None
            if stale is None or isinstance(exc, AuthError):
                raise
            log.warning("%s: upstream failed (%s); serving the cached %s", key, exc, stale.digest)
            return stale
        return fetched

    async def _resolve_tag(
        self, registry: str, repository: str, tag: str, credentials: Credentials | None
    ) -> CachedManifest:
        fetched = await self._fetch_manifest(registry, repository, tag, credentials)
        self._tags[f"{registry}/{repository}:{tag}"] = _TagEntry(fetched.digest, self._clock(), credentials is not None)
        await asyncio.to_thread(atomic_write, self.root / "tags.json", msgspec.json.encode(self._tags))
        return fetched

    async def _once(self, key: str, make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Single flight: the first caller starts ``make()`` in a task the mirror owns; later callers
        with the same key wait for that task. A caller that goes away does not cancel it."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(make(), name=f"mirror {key}")
            self._flights[key] = task
            task.add_done_callback(lambda done: self._landed(key, done))
        result: _T = await asyncio.shield(task)
        return result

    def _landed(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled() and task.exception() is not None:
            log.warning("mirror: %s", task.exception())

    def _cached_manifest(self, digest: str) -> CachedManifest | None:
        media_type = self._media.get(digest)
        if media_type is None or not self.store.has(digest):
            return None
        body = self.store.read(digest)
        self._remember_sizes(body, media_type, digest)
        return CachedManifest(body, media_type, digest)

    async def _fetch_manifest(
        self, registry: str, repository: str, reference: str, credentials: Credentials | None
    ) -> CachedManifest:
        decoded, body, digest = await self._client(registry, credentials).get_manifest(repository, reference)
        log.info("mirror: fetched manifest %s/%s:%s (%s) upstream", registry, repository, reference, digest)
        await asyncio.to_thread(self.store.put, body, digest)
        self._media[digest] = decoded.media_type
        await asyncio.to_thread(atomic_write, self.root / "manifest-types.json", msgspec.json.encode(self._media))
        self._remember_sizes(body, decoded.media_type, digest)
        return CachedManifest(body, decoded.media_type, digest)

    def _remember_sizes(self, body: bytes, media_type: str, digest: str) -> None:
        """Blob sizes from a manifest, so a blob download needs no HEAD upstream first."""
        document = decode_manifest(body, media_type, f"manifest {digest}").document
        if isinstance(document, Manifest):
            for desc in (document.config, *document.layers):
                self._sizes[desc.digest] = desc.size

    # -- blobs -----------------------------------------------------------------------------
    def cached_blob(self, digest: str) -> CachedBlob | None:
        path = self.store.blob_path(check_digest(digest))
        try:
            return CachedBlob(path, path.stat().st_size, digest)
        except FileNotFoundError:
            return None

    async def blob(
        self, registry: str, repository: str, digest: str, credentials: Credentials | None = None
    ) -> CachedBlob:
        """The verified blob, downloading it once however many callers ask at the same time."""
        cached = self.cached_blob(digest)
        if cached is not None:
            return cached
        return await self._once(f"blob {digest}", lambda: self._download(registry, repository, digest, credentials))

    async def _download(
        self, registry: str, repository: str, digest: str, credentials: Credentials | None
    ) -> CachedBlob:
        client = self._client(registry, credentials)
        size = self._sizes.get(digest)
        if size is None:
            size = await client.blob_size(repository, digest)
        log.info("mirror: fetching blob %s (%d bytes) of %s/%s upstream", digest, size, registry, repository)
        await client.fetch_blob(repository, Descriptor(media_type="", digest=digest, size=size), self.store)
        cached = self.cached_blob(digest)
        if cached is None:
            raise RegistryError(f"blob {digest} of {registry}/{repository} vanished from the mirror after download")
        return cached


def _registry_key(key: str) -> str:
    host = key.split("://", 1)[-1].split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB else host


def credentials_from_docker_config(data: bytes, registry: str, what: str = ".dockerconfigjson") -> Credentials | None:
    """The credentials a ``kubernetes.io/dockerconfigjson`` document holds for ``registry``, if any.

    Accepts ``{"auths": {HOST: {"auth": base64(USER:PASSWORD)}}}`` or ``username``/``password``
    entries; HOST may carry a scheme and path (``https://index.docker.io/v1/`` means docker.io).
    Raises RegistryError naming ``what`` when the document is malformed.
    """
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RegistryError(f"{what}: not valid JSON ({exc}); expected {{\"auths\": {{...}}}}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise RegistryError(f'{what}: expected a JSON object with an "auths" mapping of registry to credentials')
    wanted = _registry_key(registry)
    for key, entry in auths.items():
        if _registry_key(str(key)) != wanted:
            continue
        if not isinstance(entry, dict):
            raise RegistryError(f"{what}: auths[{key!r}] must be an object with auth or username/password")
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"])
        try:
            user, sep, password = base64.b64decode(str(entry.get("auth", "")), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        if not sep or not user:
            raise RegistryError(f"{what}: auths[{key!r}].auth must be base64 of USER:PASSWORD")
        return Credentials(user, password)
    return None
