"""Pull an image from a registry into the content store, and push a local image to a registry.

Owns the orchestration: choose the endpoints (registries.yaml mirrors in order, then the origin)
and the credentials for each (``--creds``, then ``shoal registry login``'s auth file, then
registries.yaml), resolve tag → manifest (selecting this node's platform from an index), download
the config and missing layers in parallel (bounded), verify, then name the image in the store.
A mirror that fails in any way is skipped for the next endpoint; content is digest-verified, so
where it came from does not matter. Pushes go to the origin only. It must not unpack layers (see
layers.py) nor print anything (callers pass a progress callback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from shoal.image import registryconfig
from shoal.image.auth import Credentials
from shoal.image.content import ContentStore
from shoal.image.credentials import AuthFile
from shoal.image.errors import ImageError, ManifestError
from shoal.image.oci import Descriptor, Manifest, decode_config
from shoal.image.platform import Want, host_platform, select_manifest
from shoal.image.reference import Reference
from shoal.image.registry import ProgressFn, RegistryClient
from shoal.image.registryconfig import Endpoint, RegistriesConfig


@dataclass(frozen=True, slots=True)
class RegistryAccess:
    """How to reach registries: registries.yaml, stored logins, and command-line overrides.

    ``credentials`` (``--creds``) apply to the image's own registry only, never to a mirror.
    """

    config: RegistriesConfig = field(default_factory=RegistriesConfig)
    logins: AuthFile | None = None
    credentials: Credentials | None = None
    insecure: frozenset[str] = frozenset()

    @classmethod
    def load(
        cls,
        *,
        authfile: str | os.PathLike[str] | None = None,
        registries: str | os.PathLike[str] | None = None,
        credentials: Credentials | None = None,
        insecure: Iterable[str] = (),
    ) -> RegistryAccess:
        """From the files in force: ``$SHOAL_AUTH_FILE``/``~/.config/shoal/auth.json`` and
        ``$SHOAL_REGISTRIES_CONFIG``/``/etc/shoal/registries.yaml`` unless paths are given."""
        return cls(registryconfig.load(registries), AuthFile(authfile), credentials, frozenset(insecure))

    def credentials_for(self, host: str, repository: str, *, origin: bool) -> Credentials | None:
        if origin and self.credentials is not None:
            return self.credentials
        if self.logins is not None and (found := self.logins.get(host, repository)) is not None:
            return found
        return self.config.host(host).credentials

    def endpoints(self, registry: str, *, mirrors: bool = True) -> list[Endpoint]:
        found = self.config.endpoints(registry, self.insecure)
        return found if mirrors else found[-1:]

    def client(
        self, ref: Reference, endpoint: Endpoint, transport: httpx.AsyncBaseTransport | None, **kw: int
    ) -> RegistryClient:
        origin = not endpoint.is_mirror
        return RegistryClient(
            ref.registry if origin else endpoint.host,
            credentials=self.credentials_for(endpoint.host, ref.repository, origin=origin),
            insecure=self.insecure | self.config.insecure,
            transport=transport,
            endpoint=endpoint.url,
            tls=self.config.host(endpoint.host).tls,
            **kw,
        )


def _access(access: RegistryAccess | None, credentials: Credentials | None, insecure: Iterable[str]) -> RegistryAccess:
    base = access if access is not None else RegistryAccess.load()
    return dataclasses.replace(
        base, credentials=credentials or base.credentials, insecure=base.insecure | frozenset(insecure)
    )


@dataclass(frozen=True, slots=True)
class PullResult:
    name: str
    digest: str
    media_type: str
    fetched: list[Descriptor]
    cached: list[Descriptor]


async def _bounded(jobs: Sequence[Callable[[], Awaitable[None]]], concurrency: int) -> None:
    sem = asyncio.Semaphore(max(1, concurrency))

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await job()

    try:
        async with asyncio.TaskGroup() as tg:
            for job in jobs:
                tg.create_task(run(job))
    except BaseExceptionGroup as group:
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def pull_image(
    store: ContentStore,
    ref: Reference,
    *,
    platform: Want | None = None,
    credentials: Credentials | None = None,
    insecure: Iterable[str] = (),
    concurrency: int = 4,
    progress: ProgressFn | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    access: RegistryAccess | None = None,
) -> PullResult:
    """Pull ``ref``; ``access`` defaults to :meth:`RegistryAccess.load` (the node's files)."""
    how = _access(access, credentials, insecure)
    *mirrors, origin = how.endpoints(ref.registry)
    failures: list[str] = []
    for mirror in mirrors:
        try:
            async with how.client(ref, mirror, transport) as client:
                return await _pull_from(client, store, ref, platform, concurrency, progress)
        except ImageError as exc:
            failures.append(f"{mirror.url}: {exc}")
    try:
        async with how.client(ref, origin, transport) as client:
            return await _pull_from(client, store, ref, platform, concurrency, progress)
    except ImageError as exc:
        if failures:
            raise type(exc)(f"{exc} (mirrors failed first: {'; '.join(failures)})") from None
        raise


async def _pull_from(
    client: RegistryClient,
    store: ContentStore,
    ref: Reference,
    platform: Want | None,
    concurrency: int,
    progress: ProgressFn | None,
) -> PullResult:
    decoded, body, digest = await client.get_manifest(ref.repository, ref.object)
    if decoded.is_index:
        assert not isinstance(decoded.document, Manifest)
        chosen = select_manifest(decoded.document, platform or host_platform(), str(ref))
        decoded, body, digest = await client.get_manifest(ref.repository, chosen.digest)
        if decoded.is_index:
            raise ManifestError(f"{ref}: index {chosen.digest} points at another index; not supported")
    manifest = decoded.document
    assert isinstance(manifest, Manifest)
    wanted: dict[str, Descriptor] = {}
    for desc in (manifest.config, *manifest.layers):
        wanted.setdefault(desc.digest, desc)
    with store.lease():
        missing = [d for d in wanted.values() if not store.has(d.digest)]
        cached = [d for d in wanted.values() if store.has(d.digest)]

        def job(d: Descriptor) -> Callable[[], Awaitable[None]]:
            return lambda: client.fetch_blob(ref.repository, d, store, progress)

        # Biggest first (longest-processing-time order): the small config never holds a slot
        # while a big layer waits, and the last layer to start is the smallest.
        await _bounded([job(d) for d in sorted(missing, key=lambda d: -d.size)], concurrency)
        config = decode_config(store.read(manifest.config.digest), f"{ref}: config")
        if len(config.rootfs.diff_ids) != len(manifest.layers):
            raise ManifestError(
                f"{ref}: config lists {len(config.rootfs.diff_ids)} diff_ids for "
                f"{len(manifest.layers)} layers"
            )
        store.put(body, digest)
        store.set_image(
            str(ref), Descriptor(media_type=decoded.media_type, digest=digest, size=len(body))
        )
    return PullResult(str(ref), digest, decoded.media_type, missing, cached)


async def push_image(
    store: ContentStore,
    local: str,
    dest: Reference,
    *,
    credentials: Credentials | None = None,
    insecure: Iterable[str] = (),
    concurrency: int = 4,
    progress: ProgressFn | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    chunk_size: int = 16 << 20,
    access: RegistryAccess | None = None,
) -> str:
    """Push local image ``local`` to ``dest``; returns the manifest digest.

    Blobs up to ``chunk_size`` go up in one PUT; bigger ones in PATCH chunks of that size.
    """
    image = store.resolve(local)
    body = store.read(image.descriptor.digest)
    manifest = store.manifest(image.descriptor.digest)
    how = _access(access, credentials, insecure)
    origin = how.endpoints(dest.registry, mirrors=False)[0]
    async with how.client(dest, origin, transport, chunk_size=chunk_size) as client:
        blobs = {d.digest: d for d in (*manifest.layers, manifest.config)}
        for digest in blobs:
            if not store.has(digest):
                raise ImageError(
                    f"{local}: blob {digest} is missing from the local store; pull the image again"
                )

        def job(d: Descriptor) -> Callable[[], Awaitable[None]]:
            async def upload() -> None:
                if not await client.blob_exists(dest.repository, d.digest):
                    await client.upload_blob(dest.repository, d, store, progress)
                elif progress:
                    progress(d.digest, d.size, d.size)

            return upload

        await _bounded([job(d) for d in blobs.values()], concurrency)
        return await client.put_manifest(
            dest.repository, dest.tag or image.descriptor.digest, body, image.descriptor.media_type
        )
