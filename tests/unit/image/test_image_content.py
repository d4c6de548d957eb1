"""Content store: verified atomic blobs, resumable writers, the image index and prune."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest

from shoal.image import mediatypes as mt
from shoal.image.content import ContentStore
from shoal.image.errors import DigestMismatchError, ImageNotFoundError, ManifestError
from shoal.image.oci import Descriptor, Manifest, chain_ids, decode_manifest, sha256_digest


def _image(store: ContentStore, layer: bytes, name: str) -> Descriptor:
    diff_id = store.put(layer)
    config = msgspec.json.encode(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    )
    cfg = store.put(config)
    manifest = Manifest(
        schema_version=2,
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(media_type=mt.OCI_CONFIG, digest=cfg, size=len(config)),
        layers=[Descriptor(media_type=mt.OCI_LAYER, digest=diff_id, size=len(layer))],
    )
    body = msgspec.json.encode(manifest)
    desc = Descriptor(media_type=mt.OCI_MANIFEST, digest=store.put(body), size=len(body))
    store.set_image(name, desc)
    return desc


def test_put_verifies_digest_and_is_content_addressed(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.blob_path(digest).read_bytes() == b"hello"
    with pytest.raises(DigestMismatchError, match="expected sha256:0000"):
        store.put(b"x", "sha256:" + "0" * 64)
    assert (tmp_path / "oci-layout").exists()


def test_writer_resumes_partial_download_and_rejects_bad_content(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = b"0123456789" * 1000
    digest = sha256_digest(data)
    w = store.writer(digest, len(data))
    w.write(data[:3000])
    w.close()
    w = store.writer(digest, len(data))
    assert w.offset == 3000
    w.write(data[3000:])
    assert w.commit().read_bytes() == data
    bad = store.writer(sha256_digest(b"other"), 5)
    bad.write(b"wrong")
    with pytest.raises(DigestMismatchError):
        bad.commit()
    assert not list((tmp_path / "ingest").iterdir())
    over = store.writer(sha256_digest(b"abc"), 3)
    with pytest.raises(DigestMismatchError, match="more than the announced 3 bytes"):
        over.write(b"abcd")


def test_index_names_resolve_and_remove(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    desc = _image(store, b"layer-a", "r.io/a:1")
    store.set_image("r.io/a:2", desc)
    assert [i.name for i in store.images()] == ["r.io/a:1", "r.io/a:2"]
    assert store.resolve(desc.digest[7:19]).descriptor.digest == desc.digest
    assert (
        ContentStore(tmp_path).resolve("r.io/a:1").descriptor.digest
        == store.resolve("r.io/a:2").descriptor.digest
    )
    store.remove_image("r.io/a:1")
    with pytest.raises(ImageNotFoundError, match=r"shoal image pull r\.io/a:1"):
        store.resolve("r.io/a:1")


def test_prune_sweeps_only_unreferenced_blobs_and_layers(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    keep = _image(store, b"layer-keep", "r.io/keep:1")
    drop = _image(store, b"layer-drop", "r.io/drop:1")
    pinned = _image(store, b"layer-pin", "r.io/pin:1")
    orphan = store.put(b"orphan")
    keep_chain = chain_ids([sha256_digest(b"layer-keep")])[0][7:]
    (tmp_path / "layers" / keep_chain).mkdir()
    (tmp_path / "layers" / ("f" * 64)).mkdir()
    store.remove_image("r.io/drop:1")
    store.remove_image("r.io/pin:1")
    result = store.prune(pinned=[pinned.digest])
    assert orphan in result.removed_blobs and drop.digest in result.removed_blobs
    assert sha256_digest(b"layer-drop") in result.removed_blobs
    assert store.has(keep.digest) and store.has(sha256_digest(b"layer-keep"))
    assert store.has(pinned.digest) and store.has(sha256_digest(b"layer-pin"))
    assert result.removed_layers == ["sha256:" + "f" * 64]
    assert (tmp_path / "layers" / keep_chain).exists()


def test_manifest_mediatype_confusion_refused() -> None:
    index_body = msgspec.json.encode({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
    with pytest.raises(ManifestError, match="disagrees with Content-Type"):
        decode_manifest(index_body, mt.OCI_MANIFEST, "m")
    both = msgspec.json.encode(
        {
            "schemaVersion": 2,
            "manifests": [],
            "layers": [],
            "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "0" * 64, "size": 1},
        }
    )
    with pytest.raises(ManifestError, match="ambiguous"):
        decode_manifest(both, mt.OCI_INDEX, "m")
    no_type = msgspec.json.encode({"schemaVersion": 2, "manifests": []})
    with pytest.raises(ManifestError, match="must not contain 'manifests'"):
        decode_manifest(no_type, mt.OCI_MANIFEST, "m")
    assert decode_manifest(no_type, mt.OCI_INDEX, "m").is_index
    with pytest.raises(ManifestError, match="unsupported media type"):
        decode_manifest(
            msgspec.json.encode({"schemaVersion": 2, "mediaType": "text/html", "layers": []}), None, "m"
        )


def test_chain_ids() -> None:
    a, b = sha256_digest(b"a"), sha256_digest(b"b")
    assert chain_ids([a, b]) == [a, sha256_digest(f"{a} {b}".encode())]
