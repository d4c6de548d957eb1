"""Images for the agent's pods: find or pull an image, unpack its layers, read its defaults.

A thin async layer over ``shoal.image`` (content store, registry pull, per-layer overlay dirs),
with one lock per image so concurrent pods pull it once. An image that is present locally is
used without touching the registry unless ``imagePullPolicy: Always``; then a failed pull falls
back to the local copy, so a node without its server or registry keeps (re)starting its pods.
It must not create containers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import msgspec

from shoal.agent.podspec import ImageDefaults

__all__ = ["ImageService", "PreparedImage"]

log = logging.getLogger("shoal.agent.images")


@dataclass(frozen=True, slots=True)
class PreparedImage:
    name: str
    digest: str
    lower_dirs: tuple[str, ...]  # topmost layer first, as overlayfs wants
    defaults: ImageDefaults


class ImageService:
    def __init__(self, root: Path, insecure: tuple[str, ...] = ()) -> None:
        from shoal.image.content import ContentStore
        from shoal.image.layers import LayerCache

        self.store = ContentStore(root)
        self.layers = LayerCache(self.store)
        self.insecure = insecure
        self._locks: dict[str, asyncio.Lock] = {}

    def _local(self, name: str) -> PreparedImage:
        image = self.store.resolve(name)
        manifest = self.store.manifest(image.descriptor.digest)
        config = msgspec.json.decode(self.store.read(manifest.config.digest))
        lower = tuple(self.layers.lowerdirs(image.name))
        inner = config.get("config") if isinstance(config, dict) else None
        return PreparedImage(image.name, image.descriptor.digest, lower,
                             ImageDefaults.from_config(inner if isinstance(inner, dict) else None))

    async def prepare(self, name: str, pull_policy: str = "IfNotPresent") -> PreparedImage:
        """The image ready to run (pulled and unpacked); raises ``shoal.image.errors.ImageError``."""
        from shoal.image.errors import ImageError, ImageNotFoundError, RegistryError

        async with self._locks.setdefault(name, asyncio.Lock()):
            if pull_policy != "Always":
                try:
                    return await asyncio.to_thread(self._local, name)
                except ImageNotFoundError:
                    if pull_policy == "Never":
                        raise
            try:
                await self._pull(name)
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

    async def _pull(self, name: str) -> None:
        from shoal.image.pull import pull_image
        from shoal.image.reference import parse_reference

        log.info("pulling image %s", name)
        await pull_image(self.store, parse_reference(name), insecure=self.insecure)
