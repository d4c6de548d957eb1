"""configMap/secret volume directories on the host, refreshed in place the way Kubernetes does it.

A volume dir holds a timestamped dir ``..<time>.<random>`` with the files, a ``..data`` symlink
to it, and one symlink per top-level entry (``key -> ..data/key``). ``write_volume`` writes a new
timestamped dir, swaps ``..data`` with one ``rename`` (atomic: a reader sees the old set or the
new one, never half), fixes the top-level links and removes the old dir; a container with the
dir bind-mounted sees the new content without a restart. It must not know about pods, the server
or what the files contain (nothing is logged).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from shoal.agent.configenv import ProjectedFile

__all__ = ["DATA_LINK", "read_volume", "write_volume"]

DATA_LINK = "..data"
_TMP_LINK = "..data_tmp"


def read_volume(root: Path) -> dict[str, tuple[bytes, int]] | None:
    """The files under ``root/..data`` as {path: (content, mode)}; None when there is no ``..data``."""
    data = root / DATA_LINK
    if not data.is_symlink():
        return None
    out: dict[str, tuple[bytes, int]] = {}
    base = data.resolve()
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            full = Path(dirpath) / name
            out[str(full.relative_to(base))] = (full.read_bytes(), full.stat().st_mode & 0o777)
    return out


def _top(path: str) -> str:
    return path.split("/", 1)[0]


def write_volume(root: Path, files: Sequence[ProjectedFile]) -> bool:
    """Make ``root`` hold exactly ``files``, atomically; False when it already did."""
    root.mkdir(parents=True, exist_ok=True)
    desired = {f.path: (f.content, f.mode) for f in files}
    if read_volume(root) == desired:
        return False
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
    new_dir = Path(tempfile.mkdtemp(prefix=f"..{stamp}.", dir=root))
    try:
        new_dir.chmod(0o755)
        for f in files:
            target = new_dir / f.path
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f.mode)
            with os.fdopen(fd, "wb") as out:
                out.write(f.content)
            os.chmod(target, f.mode)  # the umask must not narrow it
        tmp_link = root / _TMP_LINK
        with contextlib.suppress(FileNotFoundError):
            tmp_link.unlink()
        tmp_link.symlink_to(new_dir.name)
        os.rename(tmp_link, root / DATA_LINK)
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    tops = {_top(p) for p in desired}
    for top in tops:
        link = root / top
        if not link.is_symlink():
            link.symlink_to(f"{DATA_LINK}/{top}")
    for entry in root.iterdir():
        name = entry.name
        if name.startswith(".."):
            if name not in (DATA_LINK, new_dir.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        elif name not in tops and entry.is_symlink():
            entry.unlink()
    return True
