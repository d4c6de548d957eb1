"""Named network namespaces persisted as bind mounts, the way ``ip netns add`` keeps them.

Owns creating one (``unshare --net=PATH`` forks a child into a new network namespace and
bind-mounts its ``/proc/<child>/ns/net`` onto PATH, so the namespace outlives every process),
telling whether one exists, and removing one (lazy unmount, then unlink). The namespace is
created from the caller's own network namespace context, so an agent running inside a "host"
namespace makes its pods there. It must not configure interfaces: CNI plugins do that.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from shoal.net.protocol import NetworkError

__all__ = ["create_netns", "netns_exists", "remove_netns"]

_MNT_DETACH = 2
_libc: ctypes.CDLL | None = None


def netns_exists(path: Path) -> bool:
    """True when ``path`` is a mounted namespace file (a bare file left by a crash is not)."""
    return os.path.ismount(path)


async def create_netns(path: Path, timeout: float = 10.0) -> None:
    if netns_exists(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "unshare", f"--net={path}", "true", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NetworkError(f"creating network namespace {path} did not finish within {timeout:g}s") from None
    if proc.returncode != 0 or not netns_exists(path):
        path.unlink(missing_ok=True)
        raise NetworkError(
            f"cannot create network namespace {path}: {err.decode(errors='replace').strip()}; "
            "the agent needs root (CAP_SYS_ADMIN) and util-linux's unshare"
        )


def remove_netns(path: Path) -> None:
    """Unmount and delete ``path``; processes still inside keep the namespace until they exit."""
    global _libc
    if netns_exists(path):
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if _libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
            code = ctypes.get_errno()
            if code not in (errno.EINVAL, errno.ENOENT):
                raise NetworkError(f"cannot unmount network namespace {path}: {os.strerror(code)}")
    path.unlink(missing_ok=True)
