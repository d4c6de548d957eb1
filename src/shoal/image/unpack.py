"""Safe application of one layer tarball (plain, gzip or zstd) onto a directory.

Owns the rules a hostile layer cannot break: no absolute paths or ``..`` components; every parent
directory is resolved inside the root as if the root were ``/`` (a symlink can never lead a write
outside it); hardlinks must point at an existing non-directory inside the root; metadata is never
applied through a symlink (CVE-2021-32760); device nodes only when ``privileged``; byte and entry
limits against decompression bombs. Whiteouts are either applied (``WhiteoutMode.APPLY``: delete
what lower layers put there, for a flattened rootfs) or converted to overlayfs form
(``WhiteoutMode.OVERLAY``: 0/0 char devices and ``trusted.overlay.opaque``, for per-layer diff
dirs). It must not fetch anything or know about the content store.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, cast

from shoal.image.errors import LayerLimitError, UnsafeLayerError
from shoal.image.layerstream import LayerStream
from shoal.image.mediatypes import Compression, sniff_compression

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_XATTR_ALLOWED = ("user.", "security.capability")
_MAX_SYMLINK_HOPS = 40


class WhiteoutMode(StrEnum):
    APPLY = "apply"
    OVERLAY = "overlay"


@dataclass(frozen=True, slots=True)
class UnpackLimits:
    max_bytes: int = 32 << 30
    max_entries: int = 2_000_000


@dataclass(slots=True)
class LayerStats:
    diff_id: str = ""
    entries: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def open_decompressed(raw: IO[bytes]) -> IO[bytes]:
    """Wrap ``raw`` so it reads the uncompressed tar, detecting gzip/zstd by magic bytes."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, raw))
    kind = sniff_compression(buffered.peek(4)[:4])
    if kind is Compression.GZIP:
        import gzip

        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if kind is Compression.ZSTD:
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


def _parts(name: str, what: str) -> list[str]:
    if name.startswith("/"):
        raise UnsafeLayerError(f"{what} {name!r}: absolute path refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f"{what} {name!r}: '..' component refused (path traversal)")
    return parts


def _resolve_dir(root: str, parts: list[str], create: bool, entry: str) -> str:
    """Real path of directory ``parts`` under ``root``, following symlinks as if ``root`` were ``/``."""
    resolved: list[str] = []
    stack = list(reversed(parts))
    hops = 0
    while stack:
        comp = stack.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        path = os.path.join(root, *resolved, comp)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                raise UnsafeLayerError(f"layer entry {entry!r}: {path!r} does not exist") from None
            os.mkdir(path, 0o755)
            resolved.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                raise UnsafeLayerError(f"layer entry {entry!r}: too many levels of symbolic links")
            target = os.readlink(path)
            if target.startswith("/"):
                resolved = []
            stack.extend(reversed(target.split("/")))
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeLayerError(f"layer entry {entry!r}: parent {comp!r} is not a directory")
        resolved.append(comp)
    return os.path.join(root, *resolved)


def _remove(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _exists(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


class _Applier:
    def __init__(
        self, root: Path, mode: WhiteoutMode, privileged: bool, limits: UnpackLimits, stream: LayerStream
    ) -> None:
        self.root, self.stream = os.path.realpath(root), stream
        self.mode, self.privileged, self.limits = mode, privileged, limits
        self.same_owner = os.geteuid() == 0
        self.created: set[str] = set()
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.stats = LayerStats()

    def apply(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            self.stats.entries += 1
            if self.stats.entries > self.limits.max_entries:
                raise LayerLimitError(f"layer has more than {self.limits.max_entries} entries")
            self._entry(tar, member)
        for path, member in reversed(self.dirs):
            self._meta(path, member)

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _parts(member.name, "layer entry")
        if not parts:
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, member.name)
            return
        parent = _resolve_dir(self.root, parts[:-1], True, member.name)
        dest = os.path.join(parent, base)
        existing = _exists(dest)
        if member.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                _remove(dest)
                existing = None
            if existing is None:
                os.mkdir(dest, 0o700)
            self.dirs.append((dest, member))
        elif member.islnk():
            target = self._link_target(member)
            if existing is not None:
                _remove(dest)
            os.link(target, dest, follow_symlinks=False)
        else:
            if (member.ischr() or member.isblk()) and not self.privileged:
                self.stats.skipped.append(member.name)
                return
            if not (member.isreg() or member.issym() or member.ischr() or member.isblk() or member.isfifo()):
                self.stats.skipped.append(member.name)
                return
            if existing is not None:
                _remove(dest)
            self._create(tar, member, dest)
        self.created.add(dest)

    def _create(self, tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str) -> None:
        if member.issym():
            os.symlink(member.linkname, dest)
            self._meta(dest, member)
            return
        if member.isreg():
            self.stats.bytes += member.size
            if self.stats.bytes > self.limits.max_bytes:
                raise LayerLimitError(
                    f"layer files total more than the limit of {self.limits.max_bytes} bytes"
                )
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                if member.sparse is None:  # the common case: bytes straight from the decompressed chunks
                    self.stream.seek(member.offset_data)
                    if self.stream.copy_to(fd, member.size) != member.size:
                        raise tarfile.ReadError(f"unexpected end of data in {member.name!r}")
                elif (src := tar.extractfile(member)) is not None:
                    shutil.copyfileobj(src, out, 1 << 20)
        elif member.isfifo():
            os.mkfifo(dest, 0o600)
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(dest, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        self._meta(dest, member)

    def _link_target(self, member: tarfile.TarInfo) -> str:
        parts = _parts(member.linkname, f"hardlink {member.name!r} ->")
        if not parts:
            raise UnsafeLayerError(f"hardlink {member.name!r}: empty target")
        parent = _resolve_dir(self.root, parts[:-1], False, member.name)
        target = os.path.join(parent, parts[-1])
        st = _exists(target)
        if st is None or stat.S_ISDIR(st.st_mode):
            raise UnsafeLayerError(
                f"hardlink {member.name!r} -> {member.linkname!r}: target must be an existing "
                "non-directory inside the layer root"
            )
        return target

    def _whiteout(self, parts: list[str], entry: str) -> None:
        parent = _resolve_dir(self.root, parts[:-1], True, entry)
        if parts[-1] == OPAQUE_MARKER:
            if self.mode is WhiteoutMode.OVERLAY:
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
                return
            for child in os.listdir(parent):
                path = os.path.join(parent, child)
                if path not in self.created:
                    _remove(path)
            return
        name = parts[-1][len(WHITEOUT_PREFIX) :]
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeLayerError(f"layer entry {entry!r}: invalid whiteout name")
        victim = os.path.join(parent, name)
        if _exists(victim) is not None and victim not in self.created:
            _remove(victim)
        if self.mode is WhiteoutMode.OVERLAY:
            os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def _meta(self, path: str, member: tarfile.TarInfo) -> None:
        is_link = member.issym()
        if self.same_owner:
            os.lchown(path, member.uid, member.gid)
        if not is_link:
            os.chmod(path, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                name = key[len("SCHILY.xattr.") :]
                if name.startswith(_XATTR_ALLOWED):
                    try:
                        os.setxattr(
                            path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False
                        )
                    except OSError:
                        self.stats.skipped.append(f"{member.name} (xattr {name})")
        mtime_ns = int(member.mtime * 1_000_000_000)
        os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def _is_format_error(exc: Exception) -> bool:
    import zlib

    if isinstance(exc, tarfile.TarError | EOFError | zlib.error) or type(exc).__name__ == "ZstdError":
        return True
    return isinstance(exc, OSError) and exc.errno is None


def apply_layer(
    stream: IO[bytes],
    root: str | os.PathLike[str],
    *,
    mode: WhiteoutMode = WhiteoutMode.APPLY,
    privileged: bool = False,
    limits: UnpackLimits | None = None,
) -> LayerStats:
    """Apply one layer (plain/gzip/zstd tar) onto ``root``; returns stats including the DiffID."""
    limits = limits or UnpackLimits()
    try:
        reader = LayerStream(stream, limits.max_bytes)
        applier = _Applier(Path(root), mode, privileged, limits, reader)
        # Random-access mode over a forward-only stream: tarfile only seeks forward, and file
        # data goes from the decompressed chunks to the file without tarfile's 10 KiB re-buffering.
        with tarfile.open(fileobj=reader, mode="r:") as tar:  # type: ignore[call-overload]
            applier.apply(tar)
        reader.drain()
    except UnsafeLayerError:
        raise
    except Exception as exc:
        if _is_format_error(exc):
            raise UnsafeLayerError(f"layer is not a valid (compressed) tar stream: {exc}") from None
        raise
    applier.stats.diff_id = "sha256:" + reader.hash.hexdigest()
    return applier.stats
