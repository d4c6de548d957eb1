"""OCI document shapes (descriptor, manifest, index, image config) and their safe decoding.

Owns the msgspec Structs for the documents the image package reads and writes, digest helpers,
and :func:`decode_manifest`, which refuses documents whose declared media type disagrees with
their content (CVE-2021-41190). It must not do network or file I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from shoal.image import mediatypes as mt
from shoal.image.errors import DigestMismatchError, ManifestError

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


class Platform(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = msgspec.field(default=None, name="os.version")


class Descriptor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    urls: list[str] | None = None


class Manifest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    schema_version: int
    config: Descriptor
    layers: list[Descriptor]
    media_type: str | None = None
    annotations: dict[str, str] | None = None


class Index(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    schema_version: int
    manifests: list[Descriptor]
    media_type: str | None = None
    annotations: dict[str, str] | None = None


class RootFS(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    diff_ids: list[str]


class ImageConfig(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The parts of an image config this package needs; the rest is kept as raw JSON by callers."""

    architecture: str = ""
    os: str = ""
    variant: str | None = None
    rootfs: RootFS
    config: dict[str, Any] | None = None
    created: str | None = None


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str, what: str = "digest") -> str:
    """Return ``digest`` if it is a well-formed sha256 digest, else raise naming ``what``."""
    if not _DIGEST_RE.match(digest):
        raise ManifestError(f"{what}: {digest!r} is not a sha256 digest (expected sha256:<64 hex digits>)")
    return digest


def verify_bytes(data: bytes, digest: str, what: str) -> None:
    actual = sha256_digest(data)
    if actual != digest:
        raise DigestMismatchError(f"{what}: content hashes to {actual}, expected {digest}")


@dataclass(frozen=True, slots=True)
class DecodedManifest:
    """A manifest or index with the media type it was verified to have."""

    media_type: str
    document: Manifest | Index

    @property
    def is_index(self) -> bool:
        return isinstance(self.document, Index)


def decode_manifest(body: bytes, content_type: str | None, what: str) -> DecodedManifest:
    """Decode a manifest or index, refusing ambiguous or mislabelled documents (CVE-2021-41190).

    The kind is taken from the body's ``mediaType``, else the transport's Content-Type, else the
    shape. A body with both ``manifests`` and ``layers``/``config`` is refused, as is a body whose
    ``mediaType`` differs from a specific Content-Type, or whose shape contradicts its type.
    """
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ManifestError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{what}: expected a JSON object")
    has_manifests = "manifests" in raw
    has_layers = "layers" in raw or "config" in raw
    if has_manifests and has_layers:
        raise ManifestError(
            f"{what}: ambiguous document has both 'manifests' and 'layers'/'config' (refused, CVE-2021-41190)"
        )
    declared = raw.get("mediaType")
    transport = (content_type or "").split(";")[0].strip() or None
    known = mt.MANIFEST_TYPES | mt.INDEX_TYPES
    if declared is not None and transport in known and declared != transport:
        raise ManifestError(
            f"{what}: body mediaType {declared!r} disagrees with Content-Type {transport!r} "
            "(refused, CVE-2021-41190)"
        )
    media_type = declared or (transport if transport in known else None)
    if media_type is None:
        media_type = mt.OCI_INDEX if has_manifests else mt.OCI_MANIFEST
    if media_type not in known:
        raise ManifestError(f"{what}: unsupported media type {media_type!r}; expected one of {sorted(known)}")
    try:
        if mt.is_index(media_type):
            if has_layers:
                raise ManifestError(
                    f"{what}: {media_type} must not contain 'layers' or 'config' (refused, CVE-2021-41190)"
                )
            return DecodedManifest(media_type, msgspec.json.decode(body, type=Index))
        if has_manifests:
            raise ManifestError(
                f"{what}: {media_type} must not contain 'manifests' (refused, CVE-2021-41190)"
            )
        manifest = msgspec.json.decode(body, type=Manifest)
    except msgspec.ValidationError as exc:
        raise ManifestError(f"{what}: malformed {media_type}: {exc}") from None
    if manifest.schema_version != 2:
        raise ManifestError(f"{what}: schemaVersion {manifest.schema_version} is not supported (expected 2)")
    for i, layer in enumerate(manifest.layers):
        check_digest(layer.digest, f"{what}: layers[{i}].digest")
    check_digest(manifest.config.digest, f"{what}: config.digest")
    return DecodedManifest(media_type, manifest)


def decode_config(body: bytes, what: str) -> ImageConfig:
    try:
        return msgspec.json.decode(body, type=ImageConfig)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ManifestError(f"{what}: malformed image config: {exc}") from None


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def encode(doc: msgspec.Struct) -> bytes:
    return msgspec.json.encode(doc)
