"""Finds the WebAssembly module of a wasm pod's image and names it by digest.

Two image shapes run as wasm: an OCI artifact whose layer has media type
``application/vnd.wasm.content.layer.v1+wasm`` (the layer blob is the module itself), and a
FROM-scratch image whose unpacked layers hold exactly one ``.wasm`` file. Owns choosing that file and
the errors that tell the user which shape was expected. It must not import wasmtime or read
registries: it looks only at local files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from shoal.runtime.protocol import SpecError

__all__ = ["WASM_LAYER_MEDIA_TYPE", "find_module", "layer_module", "module_digest", "spec_module"]

WASM_LAYER_MEDIA_TYPE = "application/vnd.wasm.content.layer.v1+wasm"
_WASM_MAGIC = b"\0asm"
_MAX_FILES = 10_000  # a wasm image is small; stop walking a full OS image early
_WHITEOUT = ".wh."


def _is_module(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == _WASM_MAGIC
    except OSError:
        return False


def find_module(lower_dirs: Sequence[str], argv: Sequence[str] = (), field_path: str = "image") -> Path:
    """The ``.wasm`` file to run from unpacked layers (topmost first, as ``PreparedImage.lower_dirs``).

    With ``argv`` whose first word names a ``.wasm`` file in the image (``ENTRYPOINT ["/app.wasm"]``),
    that file; otherwise the image must contain exactly one ``.wasm`` file. Upper layers hide lower
    ones (and their whiteouts delete them), as in the container's root filesystem.
    """
    if argv and argv[0].endswith(".wasm"):
        rel = argv[0].lstrip("/")
        for layer in lower_dirs:
            candidate = Path(layer) / rel
            if candidate.is_file():
                if not _is_module(candidate):
                    raise SpecError(field_path, f"{argv[0]} in the image is not a WebAssembly module "
                                    "(it does not start with \\0asm); rebuild the image with a .wasm binary")
                return candidate
    found: dict[str, Path] = {}
    hidden: set[str] = set()
    seen = 0
    for layer in lower_dirs:
        root = Path(layer)
        layer_found: dict[str, Path] = {}
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                seen += 1
                if seen > _MAX_FILES:
                    raise SpecError(field_path, f"the image has more than {_MAX_FILES} files; a wasm image holds "
                                    "one .wasm file (FROM scratch) or is a wasm OCI artifact")
                rel = str((Path(dirpath) / name).relative_to(root))
                if name.startswith(_WHITEOUT):
                    hidden.add(str(Path(rel).parent / name.removeprefix(_WHITEOUT)))
                elif name.endswith(".wasm") and rel not in hidden and rel not in found:
                    layer_found[rel] = Path(dirpath) / name
        found.update(layer_found)
    if not found:
        raise SpecError(field_path, "no .wasm file in the image; a wasm pod needs a wasm OCI artifact (one "
                        f"{WASM_LAYER_MEDIA_TYPE} layer) or a FROM-scratch image with one .wasm file")
    if len(found) > 1:
        names = ", ".join("/" + rel for rel in sorted(found))
        raise SpecError(field_path, f"the image has {len(found)} .wasm files ({names}); name the one to run "
                        "as the container's command, e.g. command: [\"/app.wasm\"]")
    (path,) = found.values()
    if not _is_module(path):
        raise SpecError(field_path, f"/{next(iter(found))} is not a WebAssembly module (it does not start with "
                        "\\0asm); rebuild the image with a .wasm binary")
    return path


def layer_module(layers: Sequence[tuple[str, Path]], field_path: str = "image") -> Path:
    """The blob of the one wasm layer among an artifact's ``(media type, blob path)`` layers."""
    wasm = [path for media_type, path in layers if media_type == WASM_LAYER_MEDIA_TYPE]
    if len(wasm) != 1:
        raise SpecError(field_path, f"a wasm artifact needs exactly one {WASM_LAYER_MEDIA_TYPE} layer, "
                        f"this image has {len(wasm)}")
    if not _is_module(wasm[0]):
        raise SpecError(field_path, f"the {WASM_LAYER_MEDIA_TYPE} layer is not a WebAssembly module "
                        "(it does not start with \\0asm)")
    return wasm[0]


def spec_module(lower_dirs: Sequence[str], rootfs_path: str, argv: Sequence[str]) -> Path:
    """The module a ContainerSpec names: ``rootfs_path`` when it is a file (an artifact's wasm layer blob,
    from ``layer_module``), else the one ``find_module`` picks in ``lower_dirs`` or the ``rootfs_path`` dir."""
    if rootfs_path and Path(rootfs_path).is_file():
        if not _is_module(Path(rootfs_path)):
            raise SpecError("image", f"{rootfs_path} is not a WebAssembly module (it does not start with \\0asm)")
        return Path(rootfs_path)
    return find_module(lower_dirs or ((rootfs_path,) if rootfs_path else ()), argv)


def module_digest(path: Path) -> str:
    """``sha256:<hex>`` of the module's bytes (the compiled-module cache key, with wasmtime's version)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"
