"""Container root filesystems: an overlayfs over shared, read-only image layer dirs.

Each container gets its own ``upper`` and ``work`` dirs beside its mount point; the layer dirs
(unpacked by the image package, topmost first) are shared and never written. Owns mounting and
unmounting that overlay and nothing else: it must not unpack images or delete layer dirs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

from shoal.runtime.protocol import DriverError, SpecError

__all__ = ["OverlayPaths", "is_mounted", "mount_overlay", "overlay_paths", "unmount"]

_MNT_DETACH = 2
_EINVAL = 22
_MAX_OPTIONS = 4000  # the kernel takes at most one page of mount options


@dataclass(frozen=True, slots=True)
class OverlayPaths:
    merged: Path
    upper: Path
    work: Path


def overlay_paths(bundle: Path) -> OverlayPaths:
    return OverlayPaths(merged=bundle / "rootfs", upper=bundle / "upper", work=bundle / "work")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def is_mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point, read from /proc/self/mountinfo."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            mount_point = line.split(" ", 5)[4].replace("\\040", " ")
            if mount_point == target:
                return True
    return False


def mount_overlay(lower_dirs: tuple[str, ...], paths: OverlayPaths) -> None:
    """Mount the overlay at ``paths.merged`` (idempotent: an existing mount is kept)."""
    for i, lower in enumerate(lower_dirs):
        if not os.path.isdir(lower):
            raise SpecError(f"lower_dirs[{i}]", f"{lower!r} is not a directory; was the image layer unpacked?")
    for d in (paths.merged, paths.upper, paths.work):
        d.mkdir(parents=True, exist_ok=True)
    if is_mounted(paths.merged):
        return
    options = f"lowerdir={':'.join(lower_dirs)},upperdir={paths.upper},workdir={paths.work}"
    if len(options) > _MAX_OPTIONS:
        raise SpecError(
            "lower_dirs",
            f"{len(lower_dirs)} layers make overlay options longer than a page; "
            "squash the image or unpack it under a shorter directory",
        )
    libc = _libc()
    if libc.mount(b"overlay", str(paths.merged).encode(), b"overlay", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise DriverError(
            f"mounting the overlay rootfs at {paths.merged} failed: {os.strerror(err)}; "
            "check that the overlay module is loaded and the layer dirs are not themselves overlays"
        )


def unmount(path: Path) -> None:
    """Unmount ``path`` if it is mounted; a busy mount is detached lazily."""
    if not is_mounted(path):
        return
    libc = _libc()
    target = str(path).encode()
    if libc.umount2(target, 0) == 0:
        return
    err = ctypes.get_errno()
    if libc.umount2(target, _MNT_DETACH) != 0 and ctypes.get_errno() != _EINVAL:
        raise DriverError(f"unmounting {path} failed: {os.strerror(err)}")
