"""Pins: images held by pods survive `rm` + `prune` (store API and CLI) until they are unpinned."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.tarballs import tar_of
from typer.testing import CliRunner

from shoal.cli.image import app
from shoal.image.assemble import create_image
from shoal.image.content import ContentStore, Pin
from shoal.image.errors import ImageNotFoundError

runner = CliRunner()


def _two_images(root: Path) -> tuple[ContentStore, str, str]:
    store = ContentStore(root)
    app_digest = create_image(store, "reg.local/acme/app:1", [tar_of(("app", b"app-v1", 0o644))]).digest
    other = create_image(store, "reg.local/acme/other:1", [tar_of(("other", b"x", 0o644))]).digest
    return store, app_digest, other


def test_pinned_image_survives_untag_and_prune_until_unpinned(tmp_path: Path) -> None:
    store, app_digest, other = _two_images(tmp_path)
    manifest = store.manifest(app_digest)
    pin = store.pin("default/web-1", "reg.local/acme/app:1")
    assert pin == Pin("default/web-1", app_digest, "reg.local/acme/app:1")
    store.pin("default/web-2", app_digest)
    store.pin("default/web-2", app_digest)  # idempotent
    assert store.pinned_by(app_digest) == ["default/web-1", "default/web-2"]
    assert len(store.pins()) == 2

    store.remove_image("reg.local/acme/app:1")
    store.remove_image("reg.local/acme/other:1")
    result = ContentStore(tmp_path).prune()  # a new instance: pins are on disk
    assert {p.owner for p in result.pinned} == {"default/web-1", "default/web-2"}
    assert all(store.has(d.digest) for d in (*manifest.layers, manifest.config))
    assert store.has(app_digest) and not store.has(other)

    assert [p.owner for p in store.unpin("default/web-1")] == ["default/web-1"]
    store.prune()
    assert store.has(app_digest)  # web-2 still holds it
    assert store.unpin("default/web-2", app_digest) and store.pins() == []
    store.prune()
    assert not store.has(app_digest) and not any(store.has(d.digest) for d in manifest.layers)


def test_replace_pins_and_errors(tmp_path: Path) -> None:
    store, app_digest, other = _two_images(tmp_path)
    store.pin("default/db", "reg.local/acme/other:1")
    pins = store.replace_pins("default/web", ["reg.local/acme/app:1", "reg.local/acme/other:1", app_digest])
    assert sorted(p.digest for p in pins) == sorted([app_digest, other])
    store.replace_pins("default/web", [])
    assert store.pins() == [Pin("default/db", other, "reg.local/acme/other:1")]
    with pytest.raises(ImageNotFoundError, match="not in the local store"):
        store.pin("default/web", "reg.local/acme/missing:1")
    with pytest.raises(ValueError, match="pin owner"):
        store.pin("", app_digest)
    assert store.unpin("default/db", "reg.local/acme/other:1")  # by the name it was pinned as


def _sh(root: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--root", str(root)])
    return result.exit_code, result.output


def test_cli_rm_refuses_pinned_images_and_prune_names_the_pods(tmp_path: Path) -> None:
    store, app_digest, _ = _two_images(tmp_path)
    store.pin("default/web-1", app_digest)
    store.pin("edge/cam-7", app_digest)
    code, out = _sh(tmp_path, "rm", "reg.local/acme/app:1")
    assert code == 1
    assert "error: image reg.local/acme/app:1 is pinned by pods default/web-1, edge/cam-7" in out
    assert "--force" in out and "Traceback" not in out
    assert store.resolve("reg.local/acme/app:1")

    code, out = _sh(tmp_path, "rm", "--force", "reg.local/acme/app:1", "reg.local/acme/other:1")
    assert code == 0 and "Untagged: reg.local/acme/app:1" in out
    code, out = _sh(tmp_path, "prune")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Deleted 3 blobs")  # other's manifest, config, layer
    assert lines[1] == f"Kept reg.local/acme/app:1 ({app_digest[7:19]}): pinned by pods default/web-1, edge/cam-7"
    assert store.has(app_digest)
