"""save/load: our archives read by skopeo, skopeo's docker-archive read by us, round trips."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from imagelab import busybox_layers

from shoal.image.archive import load, save
from shoal.image.assemble import create_image
from shoal.image.content import ContentStore
from shoal.image.errors import ArchiveError
from shoal.image.layers import unpack_rootfs


def _runs(root: Path) -> None:
    assert subprocess.run([str(root / "bin/busybox"), "true"], timeout=10).returncode == 0
    assert not (root / "etc/stale").exists()
    assert os.listdir(root / "cache") == ["b"]


def test_save_load_round_trip_and_skopeo_reads_both_formats(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    desc = create_image(store, "registry.local:5000/acme/bb:1.0", busybox_layers())
    out = tmp_path / "bb.tar"
    assert save(store, ["registry.local:5000/acme/bb:1.0"], out) == ["registry.local:5000/acme/bb:1.0"]
    fresh = ContentStore(tmp_path / "fresh")
    assert load(fresh, out) == ["registry.local:5000/acme/bb:1.0"]
    assert fresh.resolve("registry.local:5000/acme/bb:1.0").descriptor.digest == desc.digest
    unpack_rootfs(fresh, "registry.local:5000/acme/bb:1.0", tmp_path / "rootfs")
    _runs(tmp_path / "rootfs")
    for transport in ("oci-archive", "docker-archive"):
        dest = tmp_path / f"copy-{transport}"
        subprocess.run(
            ["skopeo", "copy", "--quiet", f"{transport}:{out}", f"oci:{dest}:x"], check=True, timeout=60
        )
        index = json.loads((dest / "index.json").read_text())
        assert len(index["manifests"]) == 1


def test_load_docker_archive_written_by_skopeo(tmp_path: Path) -> None:
    src = ContentStore(tmp_path / "src")
    create_image(src, "bb", busybox_layers())
    archive = tmp_path / "docker.tar"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{src.root}:bb", f"docker-archive:{archive}:acme/bb:2"],
        check=True,
        timeout=60,
    )
    store = ContentStore(tmp_path / "store")
    assert load(store, archive) == ["docker.io/acme/bb:2"]
    unpack_rootfs(store, "docker.io/acme/bb:2", tmp_path / "rootfs")
    _runs(tmp_path / "rootfs")


def test_load_legacy_docker_save_with_symlinked_layers(tmp_path: Path) -> None:
    layers = busybox_layers()
    import hashlib

    diff_ids = ["sha256:" + hashlib.sha256(raw).hexdigest() for raw in layers]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    archive = tmp_path / "legacy.tar"
    import io

    with tarfile.open(archive, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("cfg.json", config)
        for i, raw in enumerate(layers):
            add(f"l{i}/layer.tar", raw)
        link = tarfile.TarInfo("dup/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../l0/layer.tar"
        tar.addfile(link)
        add(
            "manifest.json",
            json.dumps(
                [
                    {
                        "Config": "cfg.json",
                        "RepoTags": ["busybox:legacy"],
                        "Layers": ["dup/layer.tar", "l1/layer.tar", "l2/layer.tar"],
                    }
                ]
            ).encode(),
        )
    store = ContentStore(tmp_path / "store")
    assert load(store, archive) == ["docker.io/library/busybox:legacy"]
    unpack_rootfs(store, "docker.io/library/busybox:legacy", tmp_path / "rootfs")
    _runs(tmp_path / "rootfs")


def test_load_rejects_non_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    with pytest.raises(ArchiveError, match="not a readable tar archive"):
        load(ContentStore(tmp_path / "s"), junk)
    with pytest.raises(ArchiveError, match="no such file"):
        load(ContentStore(tmp_path / "s"), tmp_path / "missing.tar")
