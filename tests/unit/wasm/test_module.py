"""Which .wasm file of an image a wasm pod runs, and the errors that say what the image should hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shoal.runtime.protocol import SpecError
from shoal.runtime.wasm.module import WASM_LAYER_MEDIA_TYPE, find_module, layer_module, module_digest, spec_module

_MODULE = b"\0asm\x01\0\0\0"


def _file(path: Path, data: bytes = _MODULE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_one_wasm_file_of_a_scratch_image_is_found_in_any_layer(tmp_path: Path) -> None:
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    _file(top / "etc" / "config.toml", b"x = 1")
    module = _file(bottom / "srv" / "app.wasm")
    assert find_module([str(top), str(bottom)]) == module


def test_an_upper_layer_hides_and_whiteouts_delete_lower_modules(tmp_path: Path) -> None:
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    upper = _file(top / "app.wasm")
    _file(bottom / "app.wasm")
    _file(top / ".wh.old.wasm", b"")
    _file(bottom / "old.wasm")
    assert find_module([str(top), str(bottom)]) == upper


def test_several_modules_need_the_command_to_name_one(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    _file(layer / "a.wasm")
    b = _file(layer / "bin" / "b.wasm")
    with pytest.raises(SpecError, match=r"2 \.wasm files \(/a\.wasm, /bin/b\.wasm\); name the one to run") as err:
        find_module([str(layer)])
    assert err.value.field == "image"
    assert find_module([str(layer)], ["/bin/b.wasm", "--flag"]) == b


def test_no_module_or_a_fake_one_is_refused_with_the_fix(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    _file(layer / "bin" / "sh", b"\x7fELF")
    needs = rf"no \.wasm file in the image; a wasm pod needs .*{re.escape(WASM_LAYER_MEDIA_TYPE)}"
    with pytest.raises(SpecError, match=needs):
        find_module([str(layer)], field_path="spec.containers[0].image")
    _file(layer / "app.wasm", b"#!/bin/sh\n")
    with pytest.raises(SpecError, match=r"/app\.wasm is not a WebAssembly module"):
        find_module([str(layer)])
    with pytest.raises(SpecError, match=r"/app\.wasm in the image is not a WebAssembly module"):
        find_module([str(layer)], ["/app.wasm"])


def test_an_artifact_has_exactly_one_wasm_layer(tmp_path: Path) -> None:
    blob = _file(tmp_path / "blob")
    config = _file(tmp_path / "cfg", b"{}")
    assert layer_module([("application/vnd.wasm.config.v0+json", config), (WASM_LAYER_MEDIA_TYPE, blob)]) == blob
    with pytest.raises(SpecError, match=rf"exactly one {re.escape(WASM_LAYER_MEDIA_TYPE)} layer, .* has 0"):
        layer_module([("application/vnd.oci.image.layer.v1.tar+gzip", blob)])
    with pytest.raises(SpecError, match="has 2"):
        layer_module([(WASM_LAYER_MEDIA_TYPE, blob), (WASM_LAYER_MEDIA_TYPE, blob)])


def test_the_digest_names_the_bytes(tmp_path: Path) -> None:
    a, b = _file(tmp_path / "a.wasm"), _file(tmp_path / "b.wasm", _MODULE + b"\0")
    assert module_digest(a) == module_digest(_file(tmp_path / "c.wasm"))
    assert module_digest(a) != module_digest(b)
    assert module_digest(a).startswith("sha256:") and len(module_digest(a)) == 71


def test_a_spec_names_its_module_by_artifact_blob_or_by_layers(tmp_path: Path) -> None:
    blob = _file(tmp_path / "blobs" / "sha256" / "ab12")
    assert spec_module((), str(blob), ()) == blob  # rootfs_path = the artifact's wasm layer blob
    layer = tmp_path / "layer"
    module = _file(layer / "app.wasm")
    assert spec_module((str(layer),), "", ("/app.wasm",)) == module
    assert spec_module((), str(layer), ()) == module  # a ready rootfs dir
    text = _file(tmp_path / "notes", b"hello")
    with pytest.raises(SpecError, match="notes is not a WebAssembly module"):
        spec_module((), str(text), ())
