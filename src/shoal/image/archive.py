"""``shoal image save|load``: OCI image layout archives and ``docker save`` tarballs.

``save`` writes one tar that is both an OCI image layout (``oci-layout``, ``index.json``,
``blobs/``) and a ``docker save`` archive (``manifest.json`` naming the same blobs), as Docker
25+ does, with sorted entries and fixed mtimes. ``load`` accepts either (also older ``docker
save`` tarballs with ``<id>/layer.tar``); every blob is hashed on the way into the store. Archive
members are only read as streams, never extracted, so a hostile archive cannot write files.
This module must not talk to registries.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgspec

from shoal.image import mediatypes as mt
from shoal.image.content import ContentStore
from shoal.image.errors import ArchiveError, ImageError
from shoal.image.oci import Descriptor, Index, Manifest, check_digest, decode_config, decode_manifest
from shoal.image.platform import host_platform, select_manifest
from shoal.image.reference import parse_reference

_CONTAINERD_NAME = "io.containerd.image.name"


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, path: Path | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = 0, 0o644
    if path is not None:
        info.size = path.stat().st_size
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        payload = data or b""
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))


def save(store: ContentStore, names: Sequence[str], out: str | os.PathLike[str]) -> list[str]:
    """Write the named local images to ``out``; returns the names saved."""
    if not names:
        raise ImageError("save: name at least one image")
    images = [store.resolve(n) for n in names]
    blobs: set[str] = set()
    entries, docker = [], []
    for image in images:
        manifest = store.manifest(image.descriptor.digest)
        blobs.update({image.descriptor.digest, manifest.config.digest, *(d.digest for d in manifest.layers)})
        annotations = {mt.REF_NAME_ANNOTATION: image.name, _CONTAINERD_NAME: image.name}
        entries.append(msgspec.structs.replace(image.descriptor, annotations=annotations))
        tags = [image.name] if "@" not in image.name else []
        docker.append(
            {
                "Config": f"blobs/sha256/{manifest.config.digest[7:]}",
                "RepoTags": tags,
                "Layers": [f"blobs/sha256/{d.digest[7:]}" for d in manifest.layers],
            }
        )
    index = Index(schema_version=2, media_type=mt.OCI_INDEX, manifests=entries)
    tmp = Path(out).with_name(f".{Path(out).name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", msgspec.json.encode(index))
        _add(tar, "manifest.json", msgspec.json.encode(docker))
        for digest in sorted(blobs):
            _add(tar, f"blobs/sha256/{digest[7:]}", path=store.blob_path(digest))
    os.replace(tmp, out)
    return [i.name for i in images]


class _Archive:
    def __init__(self, tar: tarfile.TarFile, source: str) -> None:
        self.tar, self.source = tar, source
        self.members = {posixpath.normpath(m.name.removeprefix("./") or "."): m for m in tar.getmembers()}

    def member(self, name: str, hops: int = 0) -> tarfile.TarInfo:
        key = posixpath.normpath(name.removeprefix("./"))
        m = self.members.get(key)
        if m is None:
            raise ArchiveError(f"{self.source}: missing entry {name!r}")
        if m.issym() or m.islnk():
            if hops > 10:
                raise ArchiveError(f"{self.source}: entry {name!r}: too many links")
            base = posixpath.dirname(key) if m.issym() else ""
            return self.member(posixpath.join(base, m.linkname), hops + 1)
        if not m.isreg():
            raise ArchiveError(f"{self.source}: entry {name!r} is not a regular file")
        return m

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.member(name))
        assert f is not None
        return f

    def read(self, name: str, limit: int = 16 << 20) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise ArchiveError(f"{self.source}: {name!r} is larger than {limit} bytes")
        return self.open(name).read()

    def has(self, name: str) -> bool:
        return posixpath.normpath(name) in self.members


def _image_name(desc: Descriptor, source: str) -> str | None:
    annotations = desc.annotations or {}
    name = annotations.get(_CONTAINERD_NAME) or annotations.get(mt.REF_NAME_ANNOTATION)
    if not name:
        return None
    if "/" not in name and ":" not in name:  # a bare tag, as the OCI layout convention has it
        name = f"localhost/{Path(source).name.split('.')[0].lower() or 'image'}:{name}"
    return str(parse_reference(name))


def _load_oci(store: ContentStore, ar: _Archive) -> list[str]:
    index = msgspec.json.decode(ar.read("index.json"), type=Index)
    loaded = []
    for top in index.manifests:
        name = _image_name(top, ar.source)
        desc = top
        body = _import_blob(store, ar, desc)
        decoded = decode_manifest(body, desc.media_type, f"{ar.source}: {desc.digest}")
        if isinstance(decoded.document, Index):
            present = Index(
                schema_version=2,
                manifests=[d for d in decoded.document.manifests if ar.has(f"blobs/sha256/{d.digest[7:]}")],
            )
            desc = select_manifest(present, host_platform(), f"{ar.source}: {name}")
            decoded = decode_manifest(_import_blob(store, ar, desc), desc.media_type, ar.source)
        manifest = decoded.document
        assert isinstance(manifest, Manifest)
        for blob in (manifest.config, *manifest.layers):
            _import_blob(store, ar, blob)
        if name is not None:
            store.set_image(
                name, Descriptor(media_type=decoded.media_type, digest=desc.digest, size=desc.size)
            )
            loaded.append(name)
    return loaded


def _import_blob(store: ContentStore, ar: _Archive, desc: Descriptor) -> bytes:
    check_digest(desc.digest, f"{ar.source}: descriptor")
    if not store.has(desc.digest):
        store.put_stream(ar.open(f"blobs/sha256/{desc.digest[7:]}"), desc.digest, desc.size)
    return store.read(desc.digest) if desc.size <= 4 << 20 else b""


def _load_docker(store: ContentStore, ar: _Archive) -> list[str]:
    try:
        entries = msgspec.json.decode(ar.read("manifest.json"), type=list[dict[str, object]])
    except msgspec.DecodeError as exc:
        raise ArchiveError(f"{ar.source}: manifest.json is malformed: {exc}") from None
    loaded = []
    for i, entry in enumerate(entries):
        config_path, layer_paths, tags = entry.get("Config"), entry.get("Layers"), entry.get("RepoTags") or []
        if (
            not isinstance(config_path, str)
            or not isinstance(layer_paths, list)
            or not isinstance(tags, list)
        ):
            raise ArchiveError(f"{ar.source}: manifest.json[{i}] needs Config, Layers and RepoTags")
        config_body = ar.read(config_path)
        config = decode_config(config_body, f"{ar.source}: {config_path}")
        if len(config.rootfs.diff_ids) != len(layer_paths):
            raise ArchiveError(
                f"{ar.source}: {config_path} lists {len(config.rootfs.diff_ids)} diff_ids "
                f"for {len(layer_paths)} layers"
            )
        layers = []
        for path in layer_paths:
            digest, size = store.put_stream(ar.open(str(path)))
            with open(store.blob_path(digest), "rb") as f:
                kind = mt.sniff_compression(f.read(4))
            layers.append(Descriptor(media_type=mt.layer_media_type(kind), digest=digest, size=size))
        config_desc = Descriptor(
            media_type=mt.OCI_CONFIG, digest=store.put(config_body), size=len(config_body)
        )
        body = msgspec.json.encode(
            Manifest(schema_version=2, media_type=mt.OCI_MANIFEST, config=config_desc, layers=layers)
        )
        desc = Descriptor(media_type=mt.OCI_MANIFEST, digest=store.put(body), size=len(body))
        names = [str(parse_reference(str(t))) for t in tags] or [
            f"localhost/loaded:{config_desc.digest[7:19]}"
        ]
        for name in names:
            store.set_image(name, desc)
        loaded.extend(names)
    return loaded


def load(store: ContentStore, path: str | os.PathLike[str]) -> list[str]:
    """Import images from an OCI archive or a ``docker save`` tarball; returns the names loaded."""
    source = str(path)
    try:
        with tarfile.open(source, "r:*") as tar, store.lease():
            ar = _Archive(tar, source)
            if ar.has("index.json") and ar.has("oci-layout"):
                return _load_oci(store, ar)
            if ar.has("manifest.json"):
                return _load_docker(store, ar)
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"{source}: not a readable tar archive: {exc}") from None
    except FileNotFoundError:
        raise ArchiveError(f"{source}: no such file") from None
    raise ArchiveError(
        f"{source}: neither an OCI archive (oci-layout, index.json) nor a docker save tarball (manifest.json)"
    )
