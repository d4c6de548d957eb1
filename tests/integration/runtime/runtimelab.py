"""Fixtures for real runc/conmon tests: a busybox rootfs, a driver in tmp dirs, and a cleanup
finalizer that kills, deletes and unmounts everything the test made even when it failed."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.hostclean import cgroup_tops, kill_pid_files, kill_runc_containers, remove_cgroup_trees, unmount_all

from shoal.runtime.oci import OciDriver

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "cat", "sleep", "echo", "grep", "ls", "tail", "true", "false", "head", "wc", "id", "env", "kill")


def make_busybox_rootfs(path: Path) -> Path:
    (path / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in APPLETS:
        (path / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (path / d).mkdir()
    return path


@dataclass
class Env:
    driver: OciDriver
    root_dir: Path
    runc_root: Path
    cgroup_parent: str
    layer: Path

    def new_driver(self) -> OciDriver:
        return OciDriver(root_dir=self.root_dir, runc_root=self.runc_root, cgroup_parent=self.cgroup_parent)

    def cgroup_dirs(self) -> list[Path]:
        """Pod and container cgroup dirs under the (shared, kept) parent, in every hierarchy."""
        rel = self.cgroup_parent.strip("/")
        return sorted(p for p in Path("/sys/fs/cgroup").glob(f"*/{rel}/*") if p.is_dir())

    def mounts_under(self, base: Path) -> list[str]:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            points = [line.split()[4] for line in f]
        return [p for p in points if p.startswith(str(base))]


def _cleanup(env: Env, base: Path) -> None:
    kill_runc_containers(env.runc_root)
    if env.root_dir.is_dir():
        kill_pid_files(env.root_dir.glob("*/conmon.pid"))
    unmount_all(env.mounts_under(base))
    remove_cgroup_trees(cgroup_tops(env.cgroup_parent))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    parent = f"/shoal-test-{uuid.uuid4().hex[:8]}"
    root_dir, runc_root = tmp_path / "containers", tmp_path / "runc"
    layer = make_busybox_rootfs(tmp_path / "layer")
    e = Env(OciDriver(root_dir=root_dir, runc_root=runc_root, cgroup_parent=parent), root_dir, runc_root, parent, layer)
    try:
        yield e
    finally:
        _cleanup(e, tmp_path)
