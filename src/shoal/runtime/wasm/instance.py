"""One running WebAssembly module instance in the wasm host: its Store, its thread, its limits.

A ``Run`` instantiates a compiled module in a fresh wasmtime Store with WASI preview 1 (argv, env,
preopened volume dirs, stdout/stderr to the CRI log), runs ``_start`` on its own thread and records
how it ended: the ``proc_exit`` code, a trap, a memory limit reached or the CPU limit exceeded. The
Store's epoch-deadline callback (the engine ticks every ``TICK`` seconds) is where a run is
paused, stopped and held to its CPU share. A trap or an exhausted limit ends this Store only; other
instances never notice. Imported only by the host process (it imports wasmtime).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import wasmtime
from wasmtime import _bindings as _ffi

from shoal.runtime.protocol import ContainerSpec, StopReason
from shoal.runtime.wasm.crilog import CriLogWriter

__all__ = ["EXIT_KILLED", "EXIT_TRAP", "Outcome", "Run"]

TICK = 0.01  # seconds between engine epoch increments (the host's ticker)
EXIT_TRAP = 134  # a trap, like a process aborted by SIGABRT
EXIT_KILLED = 137  # stopped by the host (stop, CPU limit, memory limit), like SIGKILL
_PAGE = 65536
_DEADLINE_CB = _ffi._wasmtime_store_epoch_deadline_callback.argtypes[1]
_FINALIZER = _ffi._wasmtime_store_epoch_deadline_callback.argtypes[3]
_NO_FINALIZER = _FINALIZER(lambda _data: None)


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int
    reason: StopReason
    message: str
    finished_at: datetime


def _deadline_error(message: str) -> int:
    err = _ffi.wasmtime_error_new(message.encode())
    return ctypes.cast(err, ctypes.c_void_p).value or 0


class Run:
    """``spec`` running ``module`` on ``engine``; ``on_exit`` is called once, on the run's thread."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module, spec: ContainerSpec, argv: list[str],
                 log: CriLogWriter, on_exit: Callable[[Outcome], None], cpu_window: float = 1.0) -> None:
        self.spec = spec
        self._engine = engine
        self._module = module
        self._argv = argv
        self._log = log
        self._on_exit = on_exit
        self._cpu_window = cpu_window
        self._stop_message = ""
        self._resume = threading.Event()
        self._resume.set()
        self._memory: wasmtime.Memory | None = None
        self._store: wasmtime.Store | None = None
        self._callback = _DEADLINE_CB(self._on_deadline)
        self._window = (0.0, 0.0)  # (wall, thread cpu) when the current CPU window began
        self._thread_id = 0
        self.memory_bytes = 0
        self._thread = threading.Thread(target=self._main, name=f"wasm-{spec.id}", daemon=True)

    # ----- control, from the host's threads ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request_stop(self, message: str) -> None:
        self._stop_message = self._stop_message or message
        self._resume.set()

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def cpu_ns(self) -> int:
        if not self._thread_id or not self._thread.is_alive():
            return 0
        try:
            return time.clock_gettime_ns(time.pthread_getcpuclockid(self._thread_id))
        except OSError:
            return 0

    # ----- the run's own thread ------------------------------------------------------------------

    def _on_deadline(self, _ctx: object, _data: object, delta: ctypes.Array[ctypes.c_uint64],
                     kind: ctypes.Array[ctypes.c_uint8]) -> int:
        delta[0] = 1
        kind[0] = 0  # continue
        try:
            self._resume.wait()
            if self._stop_message:
                return _deadline_error(self._stop_message)
            if self._memory is not None and self._store is not None:
                self.memory_bytes = self._memory.data_len(self._store)
            limit = self.spec.resources.cpu_limit_millis
            if limit is not None:
                wall, cpu = time.monotonic(), time.thread_time()
                began_wall, began_cpu = self._window
                if wall - began_wall >= self._cpu_window:
                    used = (cpu - began_cpu) / (wall - began_wall) * 1000
                    self._window = (wall, cpu)
                    if used > limit:
                        self._stop_message = (f"CPU limit exceeded: the module used {used:.0f}m of CPU over "
                                              f"{wall - began_wall:.1f}s, its limit is {limit}m")
                        return _deadline_error(self._stop_message)
        except BaseException as exc:  # an exception must not unwind through wasm frames
            return _deadline_error(f"wasm host: {exc}")
        return 0

    def _store_for_run(self) -> wasmtime.Store:
        store = wasmtime.Store(self._engine)
        spec = self.spec
        if spec.resources.memory_limit_bytes is not None:
            store.set_limits(memory_size=spec.resources.memory_limit_bytes)
        wasi = wasmtime.WasiConfig()
        wasi.argv = self._argv
        wasi.env = [[k, v] for k, v in spec.env]
        wasi.stdout_custom = lambda chunk: self._log.write("stdout", bytes(chunk))
        wasi.stderr_custom = lambda chunk: self._log.write("stderr", bytes(chunk))
        for mount in spec.mounts:
            wasi.preopen_dir(mount.source, mount.destination, not mount.read_only)
        store.set_wasi(wasi)
        store.set_epoch_deadline(1)
        _ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, _NO_FINALIZER)
        return store

    def _main(self) -> None:
        self._thread_id = threading.get_ident()
        self._window = (time.monotonic(), time.thread_time())
        try:
            outcome = self._execute()
        except BaseException as exc:  # the host must always learn how the run ended
            outcome = self._ended(EXIT_TRAP, StopReason.ERROR, f"wasm host: {exc}")
        self._store = None
        self._memory = None
        if outcome.message:
            self._log.write("stderr", f"[wasm] {outcome.message}\n".encode())
        self._on_exit(outcome)

    def _ended(self, code: int, reason: StopReason, message: str = "") -> Outcome:
        return Outcome(code, reason, message, datetime.now(UTC))

    def _execute(self) -> Outcome:
        store = self._store_for_run()
        self._store = store
        linker = wasmtime.Linker(self._engine)
        linker.define_wasi()
        limit = self.spec.resources.memory_limit_bytes
        try:
            instance = linker.instantiate(store, self._module)
        except wasmtime.WasmtimeError as exc:
            if limit is not None and "limit" in str(exc).lower():
                return self._ended(EXIT_KILLED, StopReason.OOM_KILLED,
                                   f"memory limit exceeded: the module needs more than its limit of {limit} bytes "
                                   f"at instantiation ({str(exc).splitlines()[0]})")
            return self._ended(EXIT_TRAP, StopReason.ERROR, f"instantiation failed: {str(exc).splitlines()[0]}")
        exports = instance.exports(store)
        memory = exports.get("memory")
        self._memory = memory if isinstance(memory, wasmtime.Memory) else None
        start = exports.get("_start")
        if not isinstance(start, wasmtime.Func):
            return self._ended(EXIT_TRAP, StopReason.ERROR,
                               "the module exports no _start function; build it as a WASI command (wasm32-wasip1)")
        try:
            start(store)
        except wasmtime.ExitTrap as exc:
            return self._ended(exc.code, StopReason.COMPLETED if exc.code == 0 else StopReason.ERROR)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            if self._stop_message:
                reason = StopReason.ERROR
                return self._ended(EXIT_KILLED, reason, self._stop_message)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if limit is not None and self._memory is not None and self._memory.data_len(store) + _PAGE > limit:
                return self._ended(EXIT_KILLED, StopReason.OOM_KILLED,
                                   f"memory limit exceeded: the module trapped ({first}) with its memory at "
                                   f"{self._memory.data_len(store)} bytes, limit {limit} bytes")
            return self._ended(EXIT_TRAP, StopReason.ERROR, f"trap: {first}")
        return self._ended(0, StopReason.COMPLETED)
