"""The local content store: sha256 blobs, the index of named images, and garbage collection.

Layout under ROOT (an OCI image layout, so ``skopeo copy oci:ROOT:NAME`` can read it)::

    ROOT/oci-layout, ROOT/index.json       named images (annotation org.opencontainers.image.ref.name)
    ROOT/blobs/sha256/<hex>                 verified content, written temp-file + fdatasync + rename
    ROOT/ingest/<hex>.partial               downloads in progress (resumable)
    ROOT/layers/<chainid hex>/diff          unpacked layers (owned by shoal.image.layers)
    ROOT/pins.json                          pins: (owner, manifest digest) kept by prune

Blobs are immutable and only appear once verified. Durability: a blob's bytes are fdatasync'ed
before its rename and the directory is fsync'ed after it, so after a power cut a blob is either
absent (pulled again) or complete, never a name over missing data. Writeback of big blobs starts
every 8 MiB while they download (``sync_file_range``), so that fdatasync has little left to wait
for. ``prune`` is mark-and-sweep from the named images plus pinned digests; it takes the GC lock
exclusively, while pulls and pin changes hold it shared (:meth:`ContentStore.lease`), so a blob
being pulled or just pinned is never swept. Pins (:meth:`ContentStore.pin`) name an owner (the
agent uses pod keys such as ``default/web-1``) that needs an image even after its name is removed,
e.g. for the offline cache. This module must not talk to registries or unpack layers.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import msgspec

from shoal.image import mediatypes as mt
from shoal.image.errors import BlobBusyError, DigestMismatchError, ImageNotFoundError, InvalidReferenceError
from shoal.image.oci import (
    Descriptor,
    Index,
    Manifest,
    chain_ids,
    check_digest,
    decode_config,
    decode_manifest,
)
from shoal.image.reference import parse_reference

_WRITEBACK_STEP = 8 << 20
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc ``sync_file_range`` (not in ``os``), or None where it is missing."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk now, without waiting (a hint only).

    Big blobs are fdatasync'ed before they are published; starting the disk writes while the rest
    is still downloading means that final fdatasync has little left to wait for.
    """
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class BlobWriter:
    """Writes one blob into ``ingest/``, resuming a partial file; ``commit`` verifies and publishes it."""

    def __init__(self, store: ContentStore, digest: str, size: int | None, blocking: bool = True) -> None:
        self.digest, self.size, self._store = check_digest(digest), size, store
        self.partial = store.root / "ingest" / f"{digest.split(':', 1)[1]}.partial"
        self._hash = hashlib.sha256()
        self._file = self._open_locked(blocking)
        while chunk := self._file.read(1 << 20):
            self._hash.update(chunk)
        self.offset = self._file.tell()
        if size is not None and self.offset > size:
            self.reset()
        self._flushed = self.offset

    def _open_locked(self, blocking: bool) -> IO[bytes]:
        """Open and lock the partial file; one writer per blob, across processes."""
        for _ in range(100):
            f = open(self.partial, "ab+")  # noqa: SIM115 - closed by commit/close/abort
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                f.close()
                raise BlobBusyError(f"blob {self.digest} is being written by another pull") from None
            try:
                same = os.stat(self.partial).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                f.seek(0)
                return f
            f.close()  # the previous writer committed or aborted it while we waited
        raise BlobBusyError(f"blob {self.digest}: partial file keeps changing under us")

    def reset(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._hash, self.offset, self._flushed = hashlib.sha256(), 0, 0

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self.size is not None and self.offset + len(chunk) > self.size:
            self.abort()
            raise DigestMismatchError(
                f"blob {self.digest}: more than the announced {self.size} bytes received"
            )
        self._file.write(chunk)
        self._hash.update(chunk)
        self.offset += len(chunk)
        if self.offset - self._flushed >= _WRITEBACK_STEP:
            self._file.flush()
            start_writeback(self._file.fileno(), self._flushed, self.offset - self._flushed)
            self._flushed = self.offset

    def commit(self) -> Path:
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest or (self.size is not None and self.offset != self.size):
            self.abort()
            raise DigestMismatchError(
                f"blob {self.digest}: received {self.offset} bytes hashing to {actual}, "
                f"expected {self.size} bytes with digest {self.digest}"
            )
        self._file.flush()
        os.fdatasync(self._file.fileno())  # data and size on disk before the name appears
        self._file.close()
        dest = self._store.blob_path(self.digest)
        os.replace(self.partial, dest)
        _fsync_dir(dest.parent)
        return dest

    def close(self) -> None:
        """Keep the partial file for a later resume."""
        self._file.close()

    def abort(self) -> None:
        self._file.close()
        self.partial.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class LocalImage:
    name: str
    descriptor: Descriptor


@dataclass(frozen=True, slots=True)
class Pin:
    """``owner`` needs the image whose manifest is ``digest`` (``name`` is how it was asked for)."""

    owner: str
    digest: str
    name: str | None = None


class _PinFile(msgspec.Struct, frozen=True):
    pins: list[Pin] = []


@dataclass(slots=True)
class PruneResult:
    removed_blobs: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    removed_layers: list[str] = field(default_factory=list)
    pinned: list[Pin] = field(default_factory=list)


class ContentStore:
    """Content-addressed storage for images shared by the agent, the builder and the CLI."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        for sub in ("blobs/sha256", "ingest", "layers"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            atomic_write(layout, b'{"imageLayoutVersion":"1.0.0"}')

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / check_digest(digest).split(":", 1)[1]

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageNotFoundError(f"blob {digest} is not in the content store {self.root}") from None

    def writer(self, digest: str, size: int | None = None, blocking: bool = True) -> BlobWriter:
        """A locked writer for ``digest``; with ``blocking=False`` raise BlobBusyError if another has it."""
        return BlobWriter(self, digest, size, blocking)

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data``; if ``digest`` is given the content must match it. Returns the digest."""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is not None and digest != actual:
            raise DigestMismatchError(f"blob: content hashes to {actual}, expected {digest}")
        if not self.has(actual):
            w = self.writer(actual, len(data))
            w.reset()
            w.write(data)
            w.commit()
        return actual

    def put_stream(
        self, stream: IO[bytes], digest: str | None = None, size: int | None = None
    ) -> tuple[str, int]:
        """Store a stream (hashing it on the way); returns (digest, size)."""
        tmp = self.root / "ingest" / f"stream-{os.getpid()}-{id(stream)}.tmp"
        h, n = hashlib.sha256(), 0
        with open(tmp, "wb") as f:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
                n += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        actual = "sha256:" + h.hexdigest()
        if (digest is not None and digest != actual) or (size is not None and size != n):
            tmp.unlink()
            raise DigestMismatchError(f"blob: {n} bytes hashing to {actual}, expected {size} bytes {digest}")
        os.replace(tmp, self.blob_path(actual))
        return actual, n

    # -- the index of named images ---------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, name: str, kind: int) -> Iterator[None]:
        with open(self.root / name, "a+b") as lock:
            fcntl.flock(lock.fileno(), kind)
            yield

    @contextlib.contextmanager
    def lease(self) -> Iterator[None]:
        """Hold while adding content that no image references yet: prune waits for it."""
        with self._locked("gc.lock", fcntl.LOCK_SH):
            yield

    def _read_index(self) -> Index:
        path = self.root / "index.json"
        if not path.exists():
            return Index(schema_version=2, media_type=mt.OCI_INDEX, manifests=[])
        return msgspec.json.decode(path.read_bytes(), type=Index)

    def images(self) -> list[LocalImage]:
        out = []
        for d in self._read_index().manifests:
            name = (d.annotations or {}).get(mt.REF_NAME_ANNOTATION)
            if name:
                out.append(LocalImage(name, d))
        return sorted(out, key=lambda i: i.name)

    def set_image(self, name: str, descriptor: Descriptor) -> None:
        annotations = dict(descriptor.annotations or {}) | {mt.REF_NAME_ANNOTATION: name}
        entry = msgspec.structs.replace(descriptor, annotations=annotations)
        with self._locked("index.lock", fcntl.LOCK_EX):
            index = self._read_index()
            keep = [d for d in index.manifests if (d.annotations or {}).get(mt.REF_NAME_ANNOTATION) != name]
            new = msgspec.structs.replace(index, manifests=[*keep, entry])
            atomic_write(self.root / "index.json", msgspec.json.encode(new))

    def remove_image(self, name: str) -> LocalImage:
        with self._locked("index.lock", fcntl.LOCK_EX):
            index = self._read_index()
            hit = [d for d in index.manifests if (d.annotations or {}).get(mt.REF_NAME_ANNOTATION) == name]
            if not hit:
                raise ImageNotFoundError(f"image {name!r} is not in the local store; see `shoal image ls`")
            keep = [d for d in index.manifests if d not in hit]
            atomic_write(
                self.root / "index.json", msgspec.json.encode(msgspec.structs.replace(index, manifests=keep))
            )
        return LocalImage(name, hit[0])

    def resolve(self, name: str) -> LocalImage:
        """Find a local image by exact name, by manifest digest, or by a unique hex prefix (>= 6 chars)."""
        images = self.images()
        canonical = name
        with contextlib.suppress(InvalidReferenceError):
            canonical = str(parse_reference(name))
        for image in images:
            if image.name in (name, canonical):
                return image
        hexpart = name.removeprefix("sha256:")
        if len(hexpart) >= 6 and all(c in "0123456789abcdef" for c in hexpart):
            hits = {i.descriptor.digest: i for i in images if i.descriptor.digest[7:].startswith(hexpart)}
            if len(hits) == 1:
                return next(iter(hits.values()))
            if len(hits) > 1:
                raise ImageNotFoundError(f"{name!r} matches {len(hits)} images; give more digest characters")
        raise ImageNotFoundError(
            f"image {name!r} is not in the local store; pull it with `shoal image pull {name}`"
        )

    def manifest(self, digest: str) -> Manifest:
        decoded = decode_manifest(self.read(digest), None, f"manifest {digest}")
        if not isinstance(decoded.document, Manifest):
            raise ImageNotFoundError(f"{digest} is an index, not an image manifest")
        return decoded.document

    # -- pins --------------------------------------------------------------------------------
    def pins(self) -> list[Pin]:
        path = self.root / "pins.json"
        if not path.exists():
            return []
        return msgspec.json.decode(path.read_bytes(), type=_PinFile).pins

    def pinned_by(self, digest: str) -> list[str]:
        """Owners holding the image with manifest ``digest`` (sorted)."""
        return sorted({p.owner for p in self.pins() if p.digest == digest})

    def _pin_target(self, image: str) -> Pin:
        if image.startswith("sha256:") and len(image) == 71:
            named = [i.name for i in self.images() if i.descriptor.digest == image]
            return Pin("", check_digest(image), named[0] if named else None)
        found = self.resolve(image)
        return Pin("", found.descriptor.digest, found.name)

    def _edit_pins(self, edit: Callable[[list[Pin]], list[Pin]]) -> None:
        with self._locked("gc.lock", fcntl.LOCK_SH), self._locked("pins.lock", fcntl.LOCK_EX):
            before = self.pins()
            after = edit(list(before))
            if after != before:
                atomic_write(self.root / "pins.json", msgspec.json.encode(_PinFile(after)))

    def pin(self, owner: str, image: str) -> Pin:
        """Keep ``image`` (a local name, or a manifest digest) and its blobs for ``owner``; idempotent."""
        if not owner:
            raise ValueError("pin owner must be a non-empty string such as 'default/web-1'")
        target = self._pin_target(image)
        pin = Pin(owner, target.digest, target.name)
        self._edit_pins(lambda pins: pins if any(
            (p.owner, p.digest) == (owner, pin.digest) for p in pins) else [*pins, pin])
        return pin

    def replace_pins(self, owner: str, images: Iterable[str]) -> list[Pin]:
        """Atomically make ``images`` the only pins of ``owner`` (an empty list unpins it)."""
        wanted: dict[str, Pin] = {}
        for image in images:
            target = self._pin_target(image)
            wanted.setdefault(target.digest, Pin(owner, target.digest, target.name))
        self._edit_pins(lambda pins: [p for p in pins if p.owner != owner] + list(wanted.values()))
        return list(wanted.values())

    def unpin(self, owner: str, image: str | None = None) -> list[Pin]:
        """Drop ``owner``'s pins (only the one on ``image`` if given); returns the pins removed."""
        removed: list[Pin] = []
        names = set() if image is None else {image}
        if image is not None:
            with contextlib.suppress(InvalidReferenceError):
                names.add(str(parse_reference(image)))
            with contextlib.suppress(ImageNotFoundError):
                names.add(self._pin_target(image).digest)

        def edit(pins: list[Pin]) -> list[Pin]:
            hit = [p for p in pins if p.owner == owner and (image is None or names & {p.digest, p.name})]
            removed.extend(hit)
            return [p for p in pins if p not in hit]

        self._edit_pins(edit)
        return removed

    # -- garbage collection ----------------------------------------------------------------
    def _mark(self, roots: Iterable[str]) -> tuple[set[str], set[str]]:
        blobs: set[str] = set()
        chains: set[str] = set()
        todo = list(roots)
        while todo:
            digest = todo.pop()
            if digest in blobs or not self.has(digest):
                continue
            blobs.add(digest)
            doc = decode_manifest(self.read(digest), None, f"manifest {digest}").document
            if isinstance(doc, Index):
                todo.extend(d.digest for d in doc.manifests)
                continue
            blobs.add(doc.config.digest)
            blobs.update(layer.digest for layer in doc.layers)
            if self.has(doc.config.digest):
                config = decode_config(self.read(doc.config.digest), f"config {doc.config.digest}")
                chains.update(c.split(":", 1)[1] for c in chain_ids(config.rootfs.diff_ids))
        return blobs, chains

    def prune(self, pinned: Iterable[str] = ()) -> PruneResult:
        """Delete blobs and unpacked layers that no named image, pin, nor ``pinned`` digest references."""
        result = PruneResult()
        with self._locked("gc.lock", fcntl.LOCK_EX):
            result.pinned = self.pins()
            roots = [i.descriptor.digest for i in self.images()] + [p.digest for p in result.pinned] + list(pinned)
            blobs, chains = self._mark(roots)
            for path in sorted((self.root / "blobs" / "sha256").iterdir()):
                digest = f"sha256:{path.name}"
                if digest not in blobs:
                    result.freed_bytes += path.stat().st_size
                    path.unlink()
                    result.removed_blobs.append(digest)
            for path in sorted((self.root / "layers").iterdir()):
                if path.name not in chains:
                    shutil.rmtree(path, ignore_errors=True)
                    result.removed_layers.append(f"sha256:{path.name}")
            for path in (self.root / "ingest").iterdir():
                path.unlink(missing_ok=True)
        return result
