"""Tar archives for test images: entries as (name, data | symlink target | None for a dir, mode)."""

from __future__ import annotations

import io
import tarfile

Entry = tuple[str, bytes | str | None, int]


def tar_of(*entries: Entry) -> bytes:
    """Uncompressed tar bytes with fixed mtimes, so the same entries give the same layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 1_600_000_000
            if payload is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(payload, str):
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()
