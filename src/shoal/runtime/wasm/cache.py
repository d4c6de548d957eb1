"""The compiled-module cache of the wasm host: ``ROOT/cache/<sha256 hex>-<wasmtime version>.cwasm``.

Compiling a module is the slow part of starting it; a module compiled once per node (and per
wasmtime version, whose serialized code is not portable across versions) is deserialized on every
later start. Owns the key, the atomic write and the fallback to compiling when a cached file is
unreadable. Imported only by the host process (it imports wasmtime).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import wasmtime

from shoal.runtime.wasm.module import module_digest

__all__ = ["LoadedModule", "ModuleCache", "wasmtime_version"]


def wasmtime_version() -> str:
    return version("wasmtime")


@dataclass(frozen=True, slots=True)
class LoadedModule:
    module: wasmtime.Module
    digest: str
    cached: bool  # deserialized from the cache rather than compiled
    load_ms: float


class ModuleCache:
    def __init__(self, engine: wasmtime.Engine, root: Path) -> None:
        self.engine = engine
        self.root = root
        self.version = wasmtime_version()

    def path_for(self, digest: str) -> Path:
        return self.root / f"{digest.removeprefix('sha256:')}-{self.version}.cwasm"

    def load(self, wasm: Path) -> LoadedModule:
        """The module of ``wasm``, from the cache when present; raises wasmtime.WasmtimeError if invalid."""
        began = time.perf_counter()
        digest = module_digest(wasm)
        cached = self.path_for(digest)
        if cached.is_file():
            try:
                module = wasmtime.Module.deserialize_file(self.engine, str(cached))
                return LoadedModule(module, digest, True, (time.perf_counter() - began) * 1000)
            except wasmtime.WasmtimeError:
                cached.unlink(missing_ok=True)  # written by an incompatible build: compile again
        module = wasmtime.Module.from_file(self.engine, str(wasm))
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        tmp.write_bytes(module.serialize())
        os.replace(tmp, cached)
        return LoadedModule(module, digest, False, (time.perf_counter() - began) * 1000)
