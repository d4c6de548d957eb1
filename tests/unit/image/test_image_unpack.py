"""Safe unpacking: each hostile layer case, whiteouts, limits, compression and metadata."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from imagetar import Entry, directory, file, hardlink, layer, symlink

from shoal.image.errors import LayerLimitError, UnsafeLayerError
from shoal.image.unpack import UnpackLimits, WhiteoutMode, apply_layer


def apply(data: bytes, root: Path, **kw: object) -> object:
    return apply_layer(io.BytesIO(data), root, **kw)  # type: ignore[arg-type]


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): the unpack root and a sibling directory a hostile layer must not touch."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return root, outside


@pytest.mark.parametrize("compress", ["none", "gzip", "zstd"])
def test_files_dirs_symlinks_with_modes_and_diff_id(box: tuple[Path, Path], compress: str) -> None:
    root, _ = box
    raw = layer(
        directory("bin"),
        file("bin/tool", b"#!/bin/sh\n", 0o755),
        symlink("sbin", "bin"),
        file("etc/setuid", b"x", 0o4755),
    )
    stats = apply(
        layer(
            directory("bin"),
            file("bin/tool", b"#!/bin/sh\n", 0o755),
            symlink("sbin", "bin"),
            file("etc/setuid", b"x", 0o4755),
            compress=compress,
        ),
        root,
    )
    assert (root / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((root / "bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "etc/setuid").stat().st_mode) == 0o4755
    assert os.readlink(root / "sbin") == "bin"
    assert (root / "bin/tool").stat().st_mtime == 1_600_000_000
    assert stats.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()  # type: ignore[attr-defined]


def test_dotdot_traversal_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(UnsafeLayerError, match=r"'\.\.' component refused"):
        apply(layer(file("../outside/evil", b"pwned")), root)
    assert not (outside / "evil").exists()


def test_absolute_path_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(UnsafeLayerError, match="absolute path refused"):
        apply(layer(file(str(outside / "evil"), b"pwned")), root)
    assert not (outside / "evil").exists()


def test_symlink_escape_then_write_through_it_stays_inside(box: tuple[Path, Path]) -> None:
    root, outside = box
    apply(
        layer(
            symlink("abs", str(outside)),
            symlink("rel", "../../../../../.."),
            file("abs/pwned", b"a"),
            file("rel/pwned2", b"b"),
        ),
        root,
    )
    assert list(outside.iterdir()) == []
    # the links were resolved as if root were "/": the writes landed inside the root
    assert (root / str(outside).lstrip("/") / "pwned").read_bytes() == b"a"
    assert (root / "pwned2").read_bytes() == b"b"


def test_symlink_from_lower_layer_cannot_redirect_writes(box: tuple[Path, Path]) -> None:
    root, outside = box
    apply(layer(symlink("etc", str(outside))), root)
    apply(layer(file("etc/passwd", b"root::0:0")), root)
    assert not (outside / "passwd").exists()
    assert (root / str(outside).lstrip("/") / "passwd").exists()


def test_hardlink_escape_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    secret = outside / "secret"
    secret.write_text("s")
    with pytest.raises(UnsafeLayerError, match=r"'\.\.' component refused"):
        apply(layer(hardlink("leak", "../outside/secret")), root)
    with pytest.raises(UnsafeLayerError, match="absolute path refused"):
        apply(layer(hardlink("leak", str(secret))), root)
    # through a symlink: resolved inside the root, where no such file exists
    with pytest.raises(UnsafeLayerError, match=r"does not exist|must be an existing"):
        apply(layer(symlink("out", str(outside)), hardlink("leak", "out/secret")), root)
    assert secret.stat().st_nlink == 1


def test_hardlink_to_symlink_never_chmods_the_target(box: tuple[Path, Path]) -> None:
    root, outside = box
    victim = outside / "victim"
    victim.write_text("v")
    victim.chmod(0o600)
    apply(
        layer(
            symlink("s", str(victim)),
            hardlink("h", "s"),
            Entry("s2", tarfile.SYMTYPE, linkname=str(victim), mode=0o7777),
        ),
        root,
    )
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert os.path.islink(root / "h")


def test_hardlink_inside_root_shares_inode(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(layer(file("a", b"data"), hardlink("b", "a")), root)
    assert (root / "a").stat().st_ino == (root / "b").stat().st_ino


def test_device_node_only_when_privileged(box: tuple[Path, Path]) -> None:
    root, _ = box
    dev = Entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666)
    stats = apply(layer(dev, Entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)), root)
    assert not (root / "dev/sda").exists() and not (root / "dev/null").exists()
    assert stats.skipped == ["dev/sda", "dev/null"]  # type: ignore[attr-defined]
    apply(layer(dev), root, privileged=True)
    st = (root / "dev/sda").lstat()
    assert stat.S_ISBLK(st.st_mode) and os.major(st.st_rdev) == 8


def test_whiteout_removes_lower_file_and_dir(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(layer(file("etc/a", b"1"), file("etc/b", b"2"), file("var/x/y", b"3")), root)
    apply(layer(file("etc/.wh.a"), file("var/.wh.x")), root)
    assert sorted(os.listdir(root / "etc")) == ["b"]
    assert os.listdir(root / "var") == []
    assert not (root / "etc/.wh.a").exists()


def test_opaque_dir_hides_lower_entries_but_keeps_this_layers(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(layer(file("data/old1"), file("data/sub/old2")), root)
    apply(layer(file("data/new-before"), file("data/.wh..wh..opq"), file("data/new-after")), root)
    assert sorted(os.listdir(root / "data")) == ["new-after", "new-before"]


def test_overlay_mode_writes_overlayfs_whiteouts(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(
        layer(file("etc/.wh.gone"), directory("data"), file("data/.wh..wh..opq")),
        root,
        mode=WhiteoutMode.OVERLAY,
    )
    st = (root / "etc/gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(root / "data", "trusted.overlay.opaque") == b"y"


def test_whiteout_with_dotdot_name_refused(box: tuple[Path, Path]) -> None:
    root, _ = box
    with pytest.raises(UnsafeLayerError, match="invalid whiteout"):
        apply(layer(file("etc/.wh..."), file("x")), root)


def test_decompression_bomb_stopped_by_byte_limit(box: tuple[Path, Path]) -> None:
    root, _ = box
    bomb = layer(file("zeros", bytes(8 << 20)), compress="gzip")
    assert len(bomb) < 64 << 10
    with pytest.raises(LayerLimitError, match="limit of 1048576 bytes"):
        apply(bomb, root, limits=UnpackLimits(max_bytes=1 << 20))


def test_entry_count_limit(box: tuple[Path, Path]) -> None:
    root, _ = box
    with pytest.raises(LayerLimitError, match="more than 10 entries"):
        apply(layer(*[file(f"f{i}") for i in range(20)]), root, limits=UnpackLimits(max_entries=10))


def test_corrupt_layer_is_a_clear_error(box: tuple[Path, Path]) -> None:
    root, _ = box
    with pytest.raises(UnsafeLayerError, match="not a valid"):
        apply(gzip.compress(b"definitely not a tar archive" * 100)[:-20], root)


def test_file_replaces_dir_and_dir_replaces_file(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(layer(file("a/inner"), file("b")), root)
    apply(layer(file("a", b"now a file"), directory("b")), root)
    assert (root / "a").read_bytes() == b"now a file"
    assert (root / "b").is_dir()


def test_user_xattr_kept_trusted_dropped(box: tuple[Path, Path]) -> None:
    root, _ = box
    pax = {"SCHILY.xattr.user.note": "hi", "SCHILY.xattr.trusted.overlay.opaque": "y"}
    apply(layer(Entry("f", data=b"x", pax=pax)), root)
    assert os.getxattr(root / "f", "user.note") == b"hi"
    assert "trusted.overlay.opaque" not in os.listxattr(root / "f")


def test_file_over_symlink_replaces_the_link_not_its_target(box: tuple[Path, Path]) -> None:
    root, outside = box
    apply(layer(symlink("x", str(outside / "target")), file("x", b"data")), root)
    assert not (outside / "target").exists()
    assert (root / "x").read_bytes() == b"data" and not (root / "x").is_symlink()


def test_owner_preserved(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(
        layer(
            Entry("owned", data=b"x", uid=1234, gid=5678),
            Entry("l", tarfile.SYMTYPE, linkname="owned", uid=7),
        ),
        root,
    )
    st = (root / "owned").stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (root / "l").lstat().st_uid == 7
