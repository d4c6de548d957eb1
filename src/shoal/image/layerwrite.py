"""Reproducible layer blobs: tar entries → (sorted, fixed mtime, explicit owners) tar → gzip → store.

Owns :class:`Entry` (one file, dir, symlink, hardlink or whiteout to put in a layer),
:func:`write_layer` (streams the tar through the DiffID hash, gzip with mtime 0 and the blob hash
straight into the content store, so nothing big is held in memory) and :func:`entries_from_upper`
(turns an overlayfs upper dir, as left by a RUN step, into entries: 0/0 char devices become
``.wh.NAME`` and opaque dirs ``.wh..wh..opq``). Two calls with the same entries give the same
digests. It must not run containers nor decide what goes into a layer.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from shoal.image import mediatypes as mt
from shoal.image.content import ContentStore
from shoal.image.oci import Descriptor
from shoal.image.unpack import OPAQUE_MARKER, WHITEOUT_PREFIX

_BUF = 1 << 20
_OPAQUE_XATTR = "trusted.overlay.opaque"


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    WHITEOUT = "whiteout"
    OPAQUE = "opaque"


@dataclass(frozen=True, slots=True)
class Entry:
    path: str  # relative to the layer root, no leading "/"
    kind: EntryKind
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    source: str = ""  # host file holding a FILE's content
    link: str = ""  # SYMLINK target or HARDLINK's layer path


@dataclass(frozen=True, slots=True)
class LayerBlob:
    descriptor: Descriptor
    diff_id: str


class _Hashing:
    """A write-only file that hashes what passes through it into ``inner``."""

    def __init__(self, inner: _Sink) -> None:
        self.inner, self.hash, self.size = inner, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)


class _Sink:
    """Gzip (header with mtime 0, no name) into a hashed file, or plain bytes when ``level`` is None."""

    def __init__(self, path: Path, level: int | None) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.blob = hashlib.sha256()
        self.size = 0
        self._crc, self._raw_len = 0, 0
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS) if level is not None else None
        if self._deflate is not None:
            self._emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.size += len(data)
            self._file.write(data)

    def write(self, data: bytes) -> None:
        if self._deflate is None:
            self._emit(data)
            return
        self._crc = zlib.crc32(data, self._crc)
        self._raw_len += len(data)
        self._emit(self._deflate.compress(data))

    def close(self) -> None:
        if self._deflate is not None:
            self._emit(self._deflate.flush())
            self._emit(self._crc.to_bytes(4, "little") + (self._raw_len & 0xFFFFFFFF).to_bytes(4, "little"))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def _tarinfo(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, entry.uid, entry.gid, "", ""
    info.mode = entry.mode & 0o7777
    if entry.kind is EntryKind.DIR:
        info.type = tarfile.DIRTYPE
    elif entry.kind is EntryKind.SYMLINK:
        info.type, info.linkname = tarfile.SYMTYPE, entry.link
    elif entry.kind is EntryKind.HARDLINK:
        info.type, info.linkname = tarfile.LNKTYPE, entry.link
    elif entry.kind in (EntryKind.WHITEOUT, EntryKind.OPAQUE):
        parent, _, name = entry.path.rpartition("/")
        marker = OPAQUE_MARKER if entry.kind is EntryKind.OPAQUE else WHITEOUT_PREFIX + name
        info.name = f"{parent}/{marker}" if parent else marker
        info.mode = 0o644
    elif entry.source:
        info.size = os.stat(entry.source).st_size
    return info


def write_layer(
    store: ContentStore, entries: Iterable[Entry], *, mtime: int = 0, level: int | None = 6
) -> LayerBlob:
    """Write entries (sorted by path here) as a gzip layer blob (plain tar if ``level`` is None)."""
    ordered = sorted(entries, key=lambda e: (e.path, e.kind is EntryKind.OPAQUE))
    tmp = store.root / "ingest" / f"layer-{os.getpid()}-{id(ordered)}.tmp"
    sink = _Sink(tmp, level)
    hashed = _Hashing(sink)
    try:
        with tarfile.open(fileobj=hashed, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_BUF) as tar:  # type: ignore[call-overload]
            for entry in ordered:
                info = _tarinfo(entry, mtime)
                if info.isreg() and entry.source:
                    with open(entry.source, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        sink.close()
    except BaseException:
        sink.close()
        tmp.unlink(missing_ok=True)
        raise
    digest = "sha256:" + sink.blob.hexdigest()
    os.replace(tmp, store.blob_path(digest))
    media_type = mt.OCI_LAYER_GZIP if level is not None else mt.OCI_LAYER
    desc = Descriptor(media_type=media_type, digest=digest, size=sink.size)
    return LayerBlob(desc, "sha256:" + hashed.hash.hexdigest())


def entries_from_upper(upper: Path, skip: Iterable[str] = ()) -> list[Entry]:
    """Entries for an overlayfs upper dir; ``skip`` are relative paths left out (and what is under them)."""
    skipped = set(skip)
    paths: list[str] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = [d for d in dirnames if os.path.join(rel_dir, d) not in skipped]
        paths.extend(os.path.join(rel_dir, n) for n in dirnames)
        paths.extend(os.path.join(rel_dir, n) for n in filenames if os.path.join(rel_dir, n) not in skipped)
    out: list[Entry] = []
    first_path: dict[tuple[int, int], str] = {}  # hardlinks point at the first path (sorted) of an inode
    for rel in sorted(paths):
        full = os.path.join(upper, rel)
        st = os.lstat(full)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            out.append(Entry(rel, EntryKind.WHITEOUT))
        elif stat.S_ISDIR(st.st_mode):
            out.append(Entry(rel, EntryKind.DIR, mode, st.st_uid, st.st_gid))
            try:
                opaque = os.getxattr(full, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
            except OSError:
                opaque = False
            if opaque:
                out.append(Entry(rel, EntryKind.OPAQUE))
        elif stat.S_ISLNK(st.st_mode):
            out.append(Entry(rel, EntryKind.SYMLINK, 0o777, st.st_uid, st.st_gid, link=os.readlink(full)))
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in first_path:
                out.append(Entry(rel, EntryKind.HARDLINK, mode, st.st_uid, st.st_gid, link=first_path[key]))
            else:
                first_path.setdefault(key, rel)
                out.append(Entry(rel, EntryKind.FILE, mode, st.st_uid, st.st_gid, source=full))
    return out
