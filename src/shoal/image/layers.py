"""Unpacked layers cached per chain ID, for overlayfs lower dirs, and flattened root filesystems.

Owns ``ROOT/layers/<chainid hex>/diff`` (one layer's changes in overlayfs form: whiteouts as 0/0
char devices, opaque dirs as ``trusted.overlay.opaque=y``) with a ``layer.json`` marker written
last, so a half-unpacked layer is never used. Each unpacked layer's DiffID is checked against the
image config. It must not mount anything (the runtime does) nor fetch from registries.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from shoal.image.content import ContentStore, atomic_write
from shoal.image.errors import DigestMismatchError
from shoal.image.oci import chain_ids, decode_config
from shoal.image.unpack import LayerStats, UnpackLimits, WhiteoutMode, apply_layer

_UNPACK_WORKERS = 4


class LayerCache:
    """Unpacks an image's layers once per chain ID and hands out their diff directories."""

    def __init__(self, store: ContentStore, *, privileged: bool = False, limits: UnpackLimits | None = None):
        self.store, self.privileged, self.limits = store, privileged, limits

    def _plan(self, image: str) -> tuple[list[str], list[str], list[str]]:
        """(layer blob digests, diff_ids, chain ids) of a local image, bottom layer first."""
        manifest = self.store.manifest(self.store.resolve(image).descriptor.digest)
        config = decode_config(self.store.read(manifest.config.digest), f"{image}: config")
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise DigestMismatchError(
                f"{image}: config lists {len(diff_ids)} diff_ids for {len(manifest.layers)} layers"
            )
        return [d.digest for d in manifest.layers], diff_ids, chain_ids(diff_ids)

    def layer_dir(self, chain_id: str) -> Path:
        return self.store.root / "layers" / chain_id.split(":", 1)[1]

    def ensure(self, image: str) -> list[Path]:
        """Unpack what is missing; return the diff dirs bottom layer first."""
        blobs, diff_ids, _ = self._plan(image)
        return self.ensure_layers(blobs, diff_ids)

    def ensure_layers(self, blobs: list[str], diff_ids: list[str]) -> list[Path]:
        """Unpack the given layer blobs (bottom first, blobs already in the store) where missing."""
        chains = chain_ids(diff_ids)
        finals = [self.layer_dir(chain) for chain in chains]
        todo = [
            (blob, diff_id, final)
            for blob, diff_id, final in zip(blobs, diff_ids, finals, strict=True)
            if not (final / "layer.json").exists()
        ]
        with self.store.lease():
            if len(todo) == 1:
                self._unpack(*todo[0])
            elif todo:
                # Layers are independent diff dirs: unpack them in parallel (zlib and file I/O
                # release the GIL). list() re-raises the first failure.
                with ThreadPoolExecutor(max_workers=min(_UNPACK_WORKERS, len(todo))) as pool:
                    list(pool.map(lambda job: self._unpack(*job), todo))
        return [final / "diff" for final in finals]

    def _unpack(self, blob: str, diff_id: str, final: Path) -> None:
        tmp = final.with_name(f".tmp-{final.name[:16]}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "diff").mkdir(parents=True)
        try:
            with open(self.store.blob_path(blob), "rb") as f:
                stats = apply_layer(
                    f, tmp / "diff", mode=WhiteoutMode.OVERLAY, privileged=self.privileged, limits=self.limits
                )
            if stats.diff_id != diff_id:
                raise DigestMismatchError(
                    f"layer {blob}: uncompressed content hashes to {stats.diff_id}, "
                    f"but the image config says {diff_id}"
                )
            atomic_write(
                tmp / "layer.json",
                msgspec.json.encode(
                    {
                        "blob": blob,
                        "diffId": diff_id,
                        "entries": stats.entries,
                        "bytes": stats.bytes,
                        "skipped": stats.skipped,
                    }
                ),
            )
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def lowerdirs(self, image: str) -> list[str]:
        """Diff dirs top layer first, the order overlayfs expects in ``lowerdir=a:b:c``."""
        return [str(p) for p in reversed(self.ensure(image))]


def unpack_rootfs(
    store: ContentStore,
    image: str,
    dest: str | os.PathLike[str],
    *,
    privileged: bool = False,
    limits: UnpackLimits | None = None,
) -> list[LayerStats]:
    """Apply every layer of a local image, in order, into one directory (whiteouts applied)."""
    cache = LayerCache(store)
    blobs, diff_ids, _ = cache._plan(image)
    Path(dest).mkdir(parents=True, exist_ok=True)
    out = []
    for blob, diff_id in zip(blobs, diff_ids, strict=True):
        with open(store.blob_path(blob), "rb") as f:
            stats = apply_layer(f, dest, mode=WhiteoutMode.APPLY, privileged=privileged, limits=limits)
        if stats.diff_id != diff_id:
            raise DigestMismatchError(
                f"layer {blob}: uncompressed content hashes to {stats.diff_id}, "
                f"but the image config says {diff_id}"
            )
        out.append(stats)
    return out
