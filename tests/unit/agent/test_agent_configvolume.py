"""configMap/secret volume dirs: the ..data symlink swap Kubernetes uses, in place, atomically."""

from __future__ import annotations

import os
from pathlib import Path

from shoal.agent.configenv import ProjectedFile
from shoal.agent.configvolume import DATA_LINK, read_volume, write_volume


def test_first_write_lays_out_data_link_and_key_links(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    assert write_volume(root, [ProjectedFile("a.conf", b"one", 0o644), ProjectedFile("sub/b", b"two", 0o400)])
    assert (root / DATA_LINK).is_symlink() and os.readlink(root / DATA_LINK).startswith("..")
    assert os.readlink(root / "a.conf") == f"{DATA_LINK}/a.conf" and os.readlink(root / "sub") == f"{DATA_LINK}/sub"
    assert (root / "a.conf").read_bytes() == b"one" and (root / "sub" / "b").read_bytes() == b"two"
    assert (root / "sub" / "b").stat().st_mode & 0o777 == 0o400
    assert not write_volume(root, [ProjectedFile("a.conf", b"one", 0o644), ProjectedFile("sub/b", b"two", 0o400)])


def test_update_swaps_in_place_and_drops_old_keys_and_dirs(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    write_volume(root, [ProjectedFile("a", b"old", 0o644), ProjectedFile("gone", b"x", 0o644)])
    root_inode = root.stat().st_ino  # a bind mount of root must keep seeing it: same directory
    old_target = os.readlink(root / DATA_LINK)
    assert write_volume(root, [ProjectedFile("a", b"new", 0o644), ProjectedFile("b", b"added", 0o644)])
    assert root.stat().st_ino == root_inode
    assert (root / "a").read_bytes() == b"new" and (root / "b").read_bytes() == b"added"
    assert not (root / "gone").exists() and not (root / "gone").is_symlink()
    assert not (root / old_target).exists()
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("..")) == sorted(
        [DATA_LINK, os.readlink(root / DATA_LINK)])
    assert read_volume(root) == {"a": (b"new", 0o644), "b": (b"added", 0o644)}


def test_empty_volume_is_an_empty_data_dir(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    assert write_volume(root, [])
    assert read_volume(root) == {} and [p.name for p in root.iterdir() if not p.name.startswith("..")] == []
