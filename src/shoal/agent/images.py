"""Images for the agent's pods: find or pull an image, unpack its layers, read its defaults.

A thin async layer over ``shoal.image`` (content store, registry pull, per-layer overlay dirs),
with one lock per image so concurrent pods pull it once. An image that is present locally is
used without touching the registry unless ``imagePullPolicy: Always``; then a failed pull falls
back to the local copy, so a node without its server or registry keeps (re)starting its pods.
Given the server (a :class:`~shoal.client.ClientConfig` with its URL, CA and this node's token), pulls
go through the server's registry mirror (``/v2/<registry>/<repository>/...``, see shoal.api.mirror),
so a fleet behind a thin link fetches each layer from outside once; when the server cannot serve
the image the pull falls back to the registry itself, and the log says which path was taken. A
pod's ``imagePullSecrets`` reach the mirror as the pod's key (the server reads the Secrets itself)
and a direct pull as their ``.dockerconfigjson`` documents. It must not create containers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec

from shoal.agent.podspec import ImageDefaults
from shoal.client import ClientConfig

if TYPE_CHECKING:
    from shoal.image.auth import Credentials
    from shoal.image.reference import Reference

__all__ = ["ImageService", "PreparedImage"]

log = logging.getLogger("shoal.agent.images")


@dataclass(frozen=True, slots=True)
class PreparedImage:
    name: str
    digest: str
    lower_dirs: tuple[str, ...]  # topmost layer first, as overlayfs wants
    defaults: ImageDefaults


POD_HEADER = "X-Shoal-Pod"  # shoal.api.mirror.POD_HEADER (the agent must not import the api layer)


class _ServerTransport(httpx.AsyncBaseTransport):
    """Sends every request of a registry client to the shoal server, with the node's token (and pod)."""

    def __init__(self, server: ClientConfig, pod: str | None) -> None:
        self._url = httpx.URL(server.server)
        self._inner = httpx.AsyncHTTPTransport(verify=server.ssl_context())
        self._headers = {"Authorization": f"Bearer {server.token}"} | ({POD_HEADER: pod} if pod else {})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._url.scheme, host=self._url.host, port=self._url.port)
        request.headers["Host"] = self._url.netloc.decode("ascii")
        for key, value in self._headers.items():
            request.headers.setdefault(key, value)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class ImageService:
    """Images of this node; ``server`` (URL, CA, node token) enables pulls through the server's mirror."""

    def __init__(self, root: Path, insecure: tuple[str, ...] = (), server: ClientConfig | None = None) -> None:
        from shoal.image.content import ContentStore
        from shoal.image.layers import LayerCache

        self.store = ContentStore(root)
        self.layers = LayerCache(self.store)
        self.insecure = insecure
        self.server = server
        self._locks: dict[str, asyncio.Lock] = {}

    def _local(self, name: str) -> PreparedImage:
        image = self.store.resolve(name)
        manifest = self.store.manifest(image.descriptor.digest)
        config = msgspec.json.decode(self.store.read(manifest.config.digest))
        lower = tuple(self.layers.lowerdirs(image.name))
        inner = config.get("config") if isinstance(config, dict) else None
        return PreparedImage(image.name, image.descriptor.digest, lower,
                             ImageDefaults.from_config(inner if isinstance(inner, dict) else None))

    async def prepare(self, name: str, pull_policy: str = "IfNotPresent", *, pod: str | None = None,
                      docker_configs: Sequence[bytes] = (), owner: str | None = None) -> PreparedImage:
        """The image ready to run (pulled and unpacked); raises ``shoal.image.errors.ImageError``.

        ``pod`` (``NAMESPACE/NAME``) lets the server's mirror use that pod's imagePullSecrets;
        ``docker_configs`` are those Secrets' ``.dockerconfigjson`` documents, for a direct pull.
        ``owner`` pins the image for that pod: ``shoal image prune`` keeps it until ``release``.
        """
        prepared = await self._prepare(name, pull_policy, pod, docker_configs)
        if owner:
            await asyncio.to_thread(self.store.pin, owner, prepared.digest)
        return prepared

    async def release(self, owner: str) -> None:
        """The pod is gone from this node: its images may be pruned."""
        await asyncio.to_thread(self.store.unpin, owner)

    async def retain(self, owners: Collection[str]) -> None:
        """Drop the pins of every pod not in ``owners`` (pods deleted while the agent was down)."""
        def drop() -> None:
            for owner in {p.owner for p in self.store.pins()} - set(owners):
                self.store.unpin(owner)

        await asyncio.to_thread(drop)

    async def _prepare(self, name: str, pull_policy: str, pod: str | None,
                       docker_configs: Sequence[bytes]) -> PreparedImage:
        from shoal.image.errors import ImageError, ImageNotFoundError, RegistryError

        async with self._locks.setdefault(name, asyncio.Lock()):
            if pull_policy != "Always":
                try:
                    return await asyncio.to_thread(self._local, name)
                except ImageNotFoundError:
                    if pull_policy == "Never":
                        raise
            try:
                await self._pull(name, pod, docker_configs)
            except (RegistryError, OSError) as exc:
                if pull_policy == "Always":
                    try:
                        prepared = await asyncio.to_thread(self._local, name)
                    except ImageError:
                        raise exc from None
                    log.warning("pulling %s failed (%s); using the local copy", name, exc)
                    return prepared
                raise
            return await asyncio.to_thread(self._local, name)

    async def _pull(self, name: str, pod: str | None, docker_configs: Sequence[bytes]) -> None:
        from shoal.image.errors import ImageError
        from shoal.image.pull import pull_image
        from shoal.image.reference import parse_reference

        ref = parse_reference(name)
        if self.server is not None:
            try:
                await self._pull_through_mirror(ref, self.server, pod)
                return
            except (ImageError, OSError) as exc:  # the direct pull says what is really wrong, if anything
                log.warning("pulling image %s through the server's registry mirror failed (%s); "
                            "pulling directly from %s", name, exc, ref.registry)
        log.info("pulling image %s directly from registry %s", name, ref.registry)
        await pull_image(self.store, ref, insecure=self.insecure,
                         credentials=_credentials_for(ref.registry, docker_configs))

    async def _pull_through_mirror(self, ref: Reference, server: ClientConfig, pod: str | None) -> None:
        from shoal.image.oci import Descriptor
        from shoal.image.pull import pull_image
        from shoal.image.reference import Reference

        netloc = httpx.URL(server.server).netloc.decode("ascii")
        via = Reference(netloc, f"{ref.registry}/{ref.repository}", ref.tag, ref.digest)
        transport = _ServerTransport(server, pod)
        result = await pull_image(self.store, via, transport=transport)
        size = len(await asyncio.to_thread(self.store.read, result.digest))
        await asyncio.to_thread(self.store.set_image, str(ref), Descriptor(media_type=result.media_type,
                                                                           digest=result.digest, size=size))
        await asyncio.to_thread(self.store.remove_image, result.name)
        log.info("pulled image %s through the server's registry mirror at %s (%d blobs fetched, %d cached)",
                 ref, server.server, len(result.fetched), len(result.cached))


def _credentials_for(registry: str, docker_configs: Sequence[bytes]) -> Credentials | None:
    from shoal.image.mirror import credentials_from_docker_config

    for document in docker_configs:
        found = credentials_from_docker_config(document, registry, "imagePullSecret .dockerconfigjson")
        if found is not None:
            return found
    return None
