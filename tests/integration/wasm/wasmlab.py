"""Helpers for the wasm integration tests: WAT modules compiled with wat2wasm, image dirs, a host per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from shoal.model.pod import ContainerState
from shoal.runtime.protocol import ContainerInfo, ContainerSpec, Resources
from shoal.runtime.wasm import WasmDriver

T = TypeVar("T")

_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func $print (param $buf i32) (param $len i32)
    (local $i i32)
    (if (i32.eqz (local.get $len)) (then (return)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (if (i32.eqz (i32.load8_u (i32.add (local.get $buf) (local.get $i))))
        (then (i32.store8 (i32.add (local.get $buf) (local.get $i)) (i32.const 32))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.store8 (i32.add (local.get $buf) (i32.sub (local.get $len) (i32.const 1))) (i32.const 10))
    (i32.store (i32.const 0) (local.get $buf))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $print_args_env
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 4096)))
    (call $print (i32.const 4096) (i32.load (i32.const 20)))
    (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $environ_get (i32.const 2048) (i32.const 8192)))
    (call $print (i32.const 8192) (i32.load (i32.const 20))))
"""


def exits(code: int) -> str:
    """Prints its args and env (one line each) to stdout, then proc_exit(code)."""
    return f'(module {_IMPORTS} (func (export "_start") (call $print_args_env) (call $proc_exit (i32.const {code}))))'


HELLO = exits(0)
LOOP = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
# Grows its memory one 64 KiB page at a time up to 4 MiB; traps (unreachable) when a grow is refused.
GROW = """(module (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $n) (i32.const 63)))
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))))"""
TRAP = f'(module {_IMPORTS} (func (export "_start") (call $print_args_env) unreachable))'


def big_module(functions: int = 3000) -> str:
    """A module with many functions, so that compiling it takes measurable time."""
    body = "".join(
        f"(func $f{i} (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const {i + 3})) "
        f"(i32.xor (local.get 0) (i32.const {i * 7 + 1}))))"
        for i in range(functions)
    )
    return f'(module (memory (export "memory") 1) {body} (func (export "_start") (drop (call $f1 (i32.const 2)))))'


def wat2wasm(text: str, dest: Path) -> Path:
    src = dest.with_suffix(".wat")
    src.write_text(text)
    subprocess.run(["wat2wasm", str(src), "-o", str(dest)], check=True, timeout=60, capture_output=True)
    src.unlink()
    return dest


@dataclass
class Lab:
    tmp: Path
    driver: WasmDriver

    def image(self, name: str, wat: str) -> tuple[str, ...]:
        """lower_dirs of a FROM-scratch image holding one module, /app.wasm."""
        layer = self.tmp / "images" / name
        layer.mkdir(parents=True, exist_ok=True)
        wat2wasm(wat, layer / "app.wasm")
        return (str(layer),)

    def spec(self, cid: str, lower: tuple[str, ...], *, args: tuple[str, ...] = (),
             env: tuple[tuple[str, str], ...] = (), resources: Resources | None = None) -> ContainerSpec:
        return ContainerSpec(id=cid, name=cid, pod_uid=f"pod-{cid}", pod_name=cid, lower_dirs=lower,
                             command=("/app.wasm",), args=args, env=env, resources=resources or Resources(),
                             log_path=str(self.tmp / "logs" / cid / "0.log"))

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        await self.driver.create(spec)
        return await self.driver.start(spec.id)

    async def wait_stopped(self, cid: str, timeout: float = 10.0) -> ContainerInfo:
        deadline = time.monotonic() + timeout
        while True:
            info = await self.driver.inspect(cid)
            if info.state is ContainerState.STOPPED or time.monotonic() > deadline:
                return info
            await asyncio.sleep(0.02)


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro(), 60)

    return asyncio.run(main())


def kill_host(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int((root / "host.pid").read_text()), signal.SIGKILL)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    driver = WasmDriver(tmp_path / "wasm", cpu_window=0.3)
    try:
        yield Lab(tmp_path, driver)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(asyncio.wait_for(driver.shutdown_host(), 20))
        kill_host(tmp_path / "wasm")


# Writes "saved\n" to out.txt in its first preopened dir (fd 3); exits 10 + errno when it cannot.
WRITE_FILE = """(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "out.txt")
  (data (i32.const 200) "saved\\n")
  (func (export "_start") (local $err i32)
    (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 9)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 40)))
    (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 10) (local.get $err)))))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.load (i32.const 40)) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
