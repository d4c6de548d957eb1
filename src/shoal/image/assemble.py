"""Assemble an image in the content store from uncompressed layer tarballs and a config.

Owns writing the layer blobs (optionally gzip/zstd compressed, reproducibly), the image config
with its ``rootfs.diff_ids``, the OCI manifest, and naming the result. Used by the builder, by
archive loading and by tests. It must not talk to registries.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

from shoal.image import mediatypes as mt
from shoal.image.content import ContentStore
from shoal.image.mediatypes import Compression
from shoal.image.oci import Descriptor, Manifest, encode
from shoal.image.platform import host_platform


def compress_layer(raw: bytes, compression: Compression) -> bytes:
    if compression is Compression.GZIP:
        return gzip.compress(raw, compresslevel=6, mtime=0)
    if compression is Compression.ZSTD:
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(raw)
    return raw


def create_image(
    store: ContentStore,
    name: str | None,
    layers: Sequence[bytes],
    *,
    config: dict[str, Any] | None = None,
    architecture: str | None = None,
    compression: Compression = Compression.GZIP,
) -> Descriptor:
    """Store ``layers`` (uncompressed tars, bottom first) as an image; returns the manifest descriptor."""
    with store.lease():
        layer_descs, diff_ids = [], []
        for raw in layers:
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            blob = compress_layer(raw, compression)
            layer_descs.append(
                Descriptor(
                    media_type=mt.layer_media_type(compression), digest=store.put(blob), size=len(blob)
                )
            )
        want = host_platform()
        doc: dict[str, Any] = {
            "architecture": architecture or want.architecture,
            "os": "linux",
            "config": config or {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if want.variant and not architecture:
            doc["variant"] = want.variant
        config_body = msgspec.json.encode(doc)
        config_desc = Descriptor(
            media_type=mt.OCI_CONFIG, digest=store.put(config_body), size=len(config_body)
        )
        manifest = Manifest(
            schema_version=2, media_type=mt.OCI_MANIFEST, config=config_desc, layers=layer_descs
        )
        body = msgspec.json.encode(manifest)
        desc = Descriptor(media_type=mt.OCI_MANIFEST, digest=store.put(body), size=len(body))
        if name is not None:
            store.set_image(name, desc)
    return desc


def write_image(
    store: ContentStore, names: Sequence[str], layers: Sequence[Descriptor], config_doc: dict[str, Any]
) -> Descriptor:
    """Store ``config_doc`` and a manifest over layer blobs already in the store; name it ``names``."""
    config_body = msgspec.json.encode(config_doc, order="sorted")
    config_desc = Descriptor(media_type=mt.OCI_CONFIG, digest=store.put(config_body), size=len(config_body))
    manifest = Manifest(schema_version=2, media_type=mt.OCI_MANIFEST, config=config_desc, layers=list(layers))
    body = encode(manifest)
    desc = Descriptor(media_type=mt.OCI_MANIFEST, digest=store.put(body), size=len(body))
    for name in names:
        store.set_image(name, desc)
    return desc
