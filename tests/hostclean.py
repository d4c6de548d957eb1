"""Removing what a test's containers left on this machine, even after a failure: runc containers,
processes named by pid files, mounts and cgroup trees. Each step tolerates what is already gone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def kill_runc_containers(runc_root: Path, ids: Iterable[str] | None = None) -> None:
    """SIGKILL and delete the containers ``ids`` (default: every one runc lists) under ``runc_root``."""
    runc = ["runc", "--root", str(runc_root)]
    if ids is None:
        ids = subprocess.run([*runc, "list", "-q"], capture_output=True, text=True, timeout=30).stdout.split()
    for cid in ids:
        subprocess.run([*runc, "kill", "--all", cid, "KILL"], capture_output=True, timeout=30)
        subprocess.run([*runc, "delete", "--force", cid], capture_output=True, timeout=30)


def kill_pid_files(paths: Iterable[Path]) -> None:
    for pidfile in paths:
        with contextlib.suppress(ValueError, ProcessLookupError, FileNotFoundError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def unmount_all(points: Iterable[str]) -> None:
    """Lazily unmount ``points``, deepest first."""
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


def remove_cgroup_trees(tops: Iterable[Path], patience: float = 5.0) -> None:
    """rmdir every cgroup under each of ``tops``, leaves first. A cgroup whose killed processes are still
    exiting refuses rmdir (EBUSY) for a moment: retry for up to ``patience`` seconds, then leave it."""
    pending = [top for top in tops if top.is_dir()]
    deadline = time.monotonic() + patience
    while pending:
        for top in pending:
            for d in sorted((p for p in top.glob("**") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
        pending = [top for top in pending if top.is_dir()]
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def cgroup_tops(parent: str) -> list[Path]:
    """``parent`` (e.g. /shoal-test-1) in every cgroup hierarchy (v1) and at the v2 root."""
    rel = parent.strip("/")
    return [CGROUP_FS / rel, *(hierarchy / rel for hierarchy in CGROUP_FS.iterdir())]
