"""Push, pull and unpack against a real docker-registry on loopback, with and without auth."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from imagelab import PASSWORD, USER, Registry, busybox_layers, tar_of

from shoal.image import mediatypes as mt
from shoal.image.assemble import create_image
from shoal.image.auth import Credentials
from shoal.image.content import ContentStore
from shoal.image.errors import AuthError, ImageNotFoundError
from shoal.image.layers import LayerCache, unpack_rootfs
from shoal.image.mediatypes import Compression
from shoal.image.oci import Descriptor, Index, Platform
from shoal.image.pull import pull_image, push_image
from shoal.image.reference import parse_reference
from shoal.image.registry import RegistryClient


def _check_busybox_tree(root: Path) -> None:
    busybox = root / "bin/busybox"
    assert stat.S_IMODE(busybox.stat().st_mode) == 0o755
    assert subprocess.run([str(busybox), "true"], timeout=10).returncode == 0
    assert (root / "etc/motd").read_text() == "hello\n"
    assert not (root / "etc/stale").exists()
    assert sorted(os.listdir(root / "cache")) == ["b"]


def test_push_delete_pull_unpack_runs_busybox(registry: Registry, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    ref = parse_reference(f"{registry.host}/acme/busybox:1.0")
    desc = create_image(store, "local/busybox:1", busybox_layers(), config={"Cmd": ["/bin/sh"]})
    pushed = asyncio.run(push_image(store, "local/busybox:1", ref))
    assert pushed == desc.digest
    store.remove_image("local/busybox:1")
    assert store.prune().removed_blobs  # everything is gone locally
    assert not list((store.root / "blobs/sha256").iterdir())

    seen: dict[str, int] = {}
    result = asyncio.run(pull_image(store, ref, progress=lambda d, done, total: seen.__setitem__(d, done)))
    assert result.digest == desc.digest and len(result.fetched) == 4
    assert all(seen[d.digest] == d.size for d in result.fetched)
    unpack_rootfs(store, str(ref), tmp_path / "rootfs")
    _check_busybox_tree(tmp_path / "rootfs")

    again = asyncio.run(pull_image(store, ref))
    assert again.fetched == [] and len(again.cached) == 4


def test_layer_cache_gives_overlay_lowerdirs_that_mount(registry: Registry, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    create_image(store, "local/bb:1", busybox_layers(), compression=Compression.ZSTD)
    ref = parse_reference(f"{registry.host}/bb:zstd")
    asyncio.run(push_image(store, "local/bb:1", ref))
    fresh = ContentStore(tmp_path / "fresh")
    asyncio.run(pull_image(fresh, ref))
    lower = LayerCache(fresh).lowerdirs(str(ref))
    assert len(lower) == 3 and all(Path(p).is_dir() for p in lower)
    top = Path(lower[0])
    assert stat.S_ISCHR((top / "etc/stale").lstat().st_mode)
    assert os.getxattr(top / "cache", "trusted.overlay.opaque") == b"y"
    assert LayerCache(fresh).lowerdirs(str(ref)) == lower  # cached per chain ID
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={':'.join(lower)}", str(mnt)],
        check=True,
        timeout=10,
    )
    try:
        _check_busybox_tree(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=10)


def test_image_pushed_by_skopeo_as_docker_v2_pulls(registry: Registry, tmp_path: Path) -> None:
    src = ContentStore(tmp_path / "src")
    create_image(src, "bb", busybox_layers())
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            f"oci:{src.root}:bb",
            f"docker://{registry.host}/skopeo/bb:v2",
        ],
        check=True,
        timeout=60,
    )
    store = ContentStore(tmp_path / "store")
    result = asyncio.run(pull_image(store, parse_reference(f"{registry.host}/skopeo/bb:v2")))
    assert result.media_type == mt.DOCKER_MANIFEST
    unpack_rootfs(store, result.name, tmp_path / "rootfs")
    _check_busybox_tree(tmp_path / "rootfs")


def test_index_selects_platform(registry: Registry, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    amd = create_image(store, "amd", busybox_layers()[:1], architecture="amd64")
    arm = create_image(store, "arm", busybox_layers()[:2], architecture="arm64")
    ref = parse_reference(f"{registry.host}/multi:1")
    for name in ("amd", "arm"):
        asyncio.run(push_image(store, name, ref.with_tag(name)))
    index = Index(
        schema_version=2,
        media_type=mt.OCI_INDEX,
        manifests=[
            Descriptor(
                media_type=mt.OCI_MANIFEST,
                digest=amd.digest,
                size=amd.size,
                platform=Platform(architecture="amd64", os="linux"),
            ),
            Descriptor(
                media_type=mt.OCI_MANIFEST,
                digest=arm.digest,
                size=arm.size,
                platform=Platform(architecture="arm64", os="linux", variant="v8"),
            ),
        ],
    )

    async def put_index() -> None:
        async with RegistryClient(registry.host) as client:
            await client.put_manifest("multi", "1", msgspec.json.encode(index), mt.OCI_INDEX)

    asyncio.run(put_index())
    from shoal.image.platform import Want

    for want, digest in ((Want("linux", "arm64"), arm.digest), (Want("linux", "amd64"), amd.digest)):
        fresh = ContentStore(tmp_path / f"fresh-{want.architecture}")
        assert asyncio.run(pull_image(fresh, ref, platform=want)).digest == digest
    with pytest.raises(
        ImageNotFoundError, match="no manifest for platform linux/riscv64; available: linux/amd64"
    ):
        asyncio.run(pull_image(ContentStore(tmp_path / "x"), ref, platform=Want("linux", "riscv64")))


def test_missing_image_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match=r"manifest nothing/here:latest not found in registry"):
        asyncio.run(pull_image(ContentStore(tmp_path), parse_reference(f"{registry.host}/nothing/here")))


def test_basic_auth_registry(start_registry: Callable[[bool], Registry], tmp_path: Path) -> None:
    registry = start_registry(True)
    store = ContentStore(tmp_path / "store")
    create_image(store, "bb", busybox_layers())
    ref = parse_reference(f"{registry.host}/private/bb:1")
    with pytest.raises(AuthError, match=r"requires a login.*--creds USER:PASSWORD"):
        asyncio.run(push_image(store, "bb", ref))
    with pytest.raises(AuthError, match="credentials for user 'edge' were rejected"):
        asyncio.run(push_image(store, "bb", ref, credentials=Credentials(USER, "wrong")))
    asyncio.run(push_image(store, "bb", ref, credentials=Credentials(USER, PASSWORD)))
    fresh = ContentStore(tmp_path / "fresh")
    with pytest.raises(AuthError, match="requires a login"):
        asyncio.run(pull_image(fresh, ref))
    asyncio.run(pull_image(fresh, ref, credentials=Credentials(USER, PASSWORD)))
    unpack_rootfs(fresh, str(ref), tmp_path / "rootfs")
    _check_busybox_tree(tmp_path / "rootfs")


def test_resume_from_partial_download(registry: Registry, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    desc = create_image(store, "bb", busybox_layers())
    ref = parse_reference(f"{registry.host}/resume/bb:1")
    asyncio.run(push_image(store, "bb", ref))
    layer = store.manifest(desc.digest).layers[0]
    data = store.read(layer.digest)
    fresh = ContentStore(tmp_path / "fresh")
    w = fresh.writer(layer.digest, layer.size)
    w.write(data[: len(data) // 2])
    w.close()
    starts: list[int] = []
    asyncio.run(
        pull_image(
            fresh,
            ref,
            progress=lambda d, done, total: starts.append(done) if d == layer.digest and not starts else None,
        )
    )
    assert starts == [len(data) // 2]  # the download resumed where the partial file ended
    assert fresh.read(layer.digest) == data


def test_chunked_push_of_big_layer(registry: Registry, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    noise = os.urandom(300_000)
    layers = [*busybox_layers()[:1], tar_of(("data", None, 0o755), ("data/noise", noise, 0o644))]
    desc = create_image(store, "big", layers)
    ref = parse_reference(f"{registry.host}/chunked/big:1")
    asyncio.run(push_image(store, "big", ref, chunk_size=64 << 10))
    assert "http.request.method=PATCH" in registry.log.read_text()
    fresh = ContentStore(tmp_path / "fresh")
    assert asyncio.run(pull_image(fresh, ref)).digest == desc.digest
    unpack_rootfs(fresh, str(ref), tmp_path / "rootfs")
    assert (tmp_path / "rootfs/data/noise").read_bytes() == noise


def test_concurrent_pulls_into_one_store_fetch_each_blob_once(registry: Registry, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    create_image(store, "bb", busybox_layers())
    ref = parse_reference(f"{registry.host}/conc/bb:1")
    asyncio.run(push_image(store, "bb", ref))
    fresh = ContentStore(tmp_path / "fresh")

    async def both() -> list[object]:
        return list(await asyncio.gather(pull_image(fresh, ref), pull_image(ContentStore(fresh.root), ref)))

    first, second = asyncio.run(both())
    assert first.digest == second.digest  # type: ignore[attr-defined]
    blob_gets = registry.log.read_text().count('"GET /v2/conc/bb/blobs/sha256:')
    assert blob_gets == 4  # config + 3 layers, each downloaded once although two pulls wanted them
    unpack_rootfs(fresh, str(ref), tmp_path / "rootfs")
    _check_busybox_tree(tmp_path / "rootfs")
