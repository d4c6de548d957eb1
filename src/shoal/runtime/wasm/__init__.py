"""The wasm runtime: WebAssembly modules under wasmtime in one long-lived host process per node.

Public API: ``WasmDriver`` (the agent side, a thin unix-socket client), ``RuntimeRouter`` (one
Driver over the OCI and wasm drivers) and ``find_module`` / ``layer_module`` (which ``.wasm`` of a
pod's image to run); ``python -m shoal.runtime.wasm.host`` is the host. This package's
``__init__`` and the driver must not import wasmtime: only the host process does.
"""

from shoal.runtime.wasm.driver import WasmDriver
from shoal.runtime.wasm.module import WASM_LAYER_MEDIA_TYPE, find_module, layer_module, module_digest
from shoal.runtime.wasm.router import RuntimeRouter

__all__ = ["WASM_LAYER_MEDIA_TYPE", "RuntimeRouter", "WasmDriver", "find_module", "layer_module", "module_digest"]
