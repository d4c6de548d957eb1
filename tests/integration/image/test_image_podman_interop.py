"""Interop: an image built by podman (whiteouts and an opaque directory in its last layer) and
pushed to a real registry is pulled and unpacked by shoal to exactly podman's own tree.

podman runs with its own --root/--runroot under tmp_path (overlay driver, runc), its own HOME and
TMPDIR, and no network; everything it stored or mounted is removed afterwards, even on failure.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagelab import Registry

from shoal.image.content import ContentStore
from shoal.image.layers import LayerCache, unpack_rootfs
from shoal.image.pull import RegistryAccess, pull_image
from shoal.image.reference import parse_reference

CONTAINERFILE = """\
FROM localhost/bb:base
RUN mkdir -p /d/sub /gone/deep && touch /d/old1 /d/sub/old2 /gone/deep/x /f1 /f2 && echo keep > /etc/motd
RUN rm -f /f1 && rm -rf /gone && rm -rf /d && mkdir /d && touch /d/new && echo v2 > /f2
"""


class Podman:
    def __init__(self, base: Path) -> None:
        self.base = base
        for sub in ("root", "run", "home", "tmp"):
            (base / sub).mkdir(parents=True)
        self.env = {**os.environ, "HOME": str(base / "home"), "TMPDIR": str(base / "tmp"),
                    "XDG_CONFIG_HOME": str(base / "home" / ".config"), "XDG_DATA_HOME": str(base / "home" / ".data")}

    def __call__(self, *args: str, timeout: float = 120) -> str:
        cmd = ["podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
               "--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager", "cgroupfs", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stderr[-3000:]}"
        return proc.stdout.strip()

    def cleanup(self) -> None:
        subprocess.run(["podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                        "--storage-driver", "overlay", "--runtime", "runc", "system", "reset", "--force"],
                       capture_output=True, timeout=120, env=self.env)
        _unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def _unmount_under(base: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(str(base))), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)


@pytest.fixture
def podman() -> Iterator[Podman]:
    tool = Podman(Path(tempfile.mkdtemp(prefix="shoal-pm-", dir="/tmp")))  # podman wants a runroot < 50 chars
    try:
        yield tool
    finally:
        tool.cleanup()


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """path -> (kind, mode, content or link target), for comparing two root filesystems."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes().hex())
            else:
                out[rel] = ("other", st.st_mode, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    return out


def _check(tree: dict[str, tuple[str, int, str]], reference: dict[str, tuple[str, int, str]]) -> None:
    assert "f1" not in tree and "gone" not in tree and not any(p.startswith("gone/") for p in tree)
    assert sorted(p for p in tree if p.startswith("d/")) == ["d/new"]
    assert tree["f2"][2] == b"v2\n".hex() and tree["etc/motd"][2] == b"keep\n".hex()
    assert not [p for p in tree if ".wh." in p]
    assert tree["bin/sh"] == ("link", 0, "busybox")
    assert tree == reference


def test_podman_built_image_unpacks_to_podmans_own_tree(
    podman: Podman, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOAL_AUTH_FILE", str(tmp_path / "auth.json"))
    base = tmp_path / "base.tar"
    with tarfile.open(base, "w") as tar:
        for name, kind in (("bin", tarfile.DIRTYPE), ("etc", tarfile.DIRTYPE), ("tmp", tarfile.DIRTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add("/bin/busybox", "bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    podman("import", str(base), "localhost/bb:base")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    podman("build", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
           "-t", "localhost/interop:1", str(ctx), timeout=300)
    ref = f"{registry.host}/interop/app:1"
    podman("push", "--tls-verify=false", "localhost/interop:1", f"docker://{ref}")

    mounted = Path(podman("image", "mount", "localhost/interop:1"))
    try:
        reference = _tree(mounted)
    finally:
        podman("image", "unmount", "localhost/interop:1")
    # podman's own view has the podman semantics we expect (the test would be vacuous otherwise)
    assert sorted(p for p in reference if p.startswith("d/")) == ["d/new"] and "gone" not in reference

    store = ContentStore(tmp_path / "store")
    result = asyncio.run(pull_image(store, parse_reference(ref), access=RegistryAccess()))
    manifest = store.manifest(result.digest)
    assert len(manifest.layers) == 3  # the import, then one per RUN
    last = store.read(manifest.layers[-1].digest)
    with tarfile.open(fileobj=io.BytesIO(last)) as layer:
        names = layer.getnames()
    assert any(n.endswith(".wh..wh..opq") for n in names) and any(n.endswith(".wh.gone") for n in names)

    unpack_rootfs(store, ref, tmp_path / "rootfs")
    _check(_tree(tmp_path / "rootfs"), reference)

    # the runtime's view: the per-layer dirs stacked by overlayfs give the same tree
    lower = LayerCache(store).lowerdirs(ref)
    target = tmp_path / "overlay"
    target.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={':'.join(map(str, lower))}", str(target)],
                   check=True, timeout=30)
    try:
        _check(_tree(target), reference)
    finally:
        subprocess.run(["umount", str(target)], check=True, timeout=30)
