"""The wasm host's table of module instances, persisted under ``ROOT/instances/<id>/``.

Owns each instance's lifecycle (``shoal.runtime.lifecycle``): create finds and compiles the module
(through the compiled-module cache), start/pause/resume/stop drive a ``Run``, and every change is
written to ``status.json`` so a restarted host still reports how its instances ended. It answers
``Request``s with ``Reply``s and must not know about sockets. Imported only by the host process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import wasmtime
from msgspec.structs import replace

from shoal.model.pod import ContainerState
from shoal.runtime.lifecycle import transition
from shoal.runtime.protocol import ContainerNotFound, ContainerSpec, DriverError, SpecError, StopReason
from shoal.runtime.wasm.cache import LoadedModule, ModuleCache
from shoal.runtime.wasm.crilog import CriLogWriter
from shoal.runtime.wasm.instance import Outcome, Run
from shoal.runtime.wasm.messages import InstanceStatus, Op, Reply, Request, reply_error
from shoal.runtime.wasm.module import spec_module

__all__ = ["Registry"]

_S = ContainerState
_MAX_WAIT = 300.0  # longest WAIT a request may ask for
_STOP_WAIT = 10.0  # seconds past the grace for a run to reach its next epoch tick


@dataclass(slots=True)
class _Entry:
    spec: ContainerSpec
    status: InstanceStatus
    loaded: LoadedModule | None = None
    run: Run | None = None


class Registry:
    def __init__(self, root: Path, engine: wasmtime.Engine, cpu_window: float = 1.0) -> None:
        self.root = root
        self.engine = engine
        self.cache = ModuleCache(engine, root / "cache")
        self.cpu_window = cpu_window
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # notified when a run ends
        self._entries: dict[str, _Entry] = {}
        self._load()

    # ----- persistence ---------------------------------------------------------------------------

    def _dir(self, cid: str) -> Path:
        if not cid or "/" in cid or cid.startswith("."):
            raise ContainerNotFound(cid)
        return self.root / "instances" / cid

    def _save(self, entry: _Entry) -> None:
        path = self._dir(entry.spec.id) / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(entry.status))
        os.replace(tmp, path)

    def _load(self) -> None:
        base = self.root / "instances"
        if not base.is_dir():
            return
        for d in sorted(base.iterdir()):
            try:
                spec = msgspec.json.decode((d / "spec.json").read_bytes(), type=ContainerSpec)
                status = msgspec.json.decode((d / "status.json").read_bytes(), type=InstanceStatus)
            except (OSError, msgspec.DecodeError):
                continue
            if status.state in (_S.RUNNING, _S.PAUSED):  # it ran in a host that is gone
                status = replace(status, state=_S.STOPPED, reason=StopReason.UNKNOWN, pid=0,
                                 finished_at=datetime.now(UTC), message="the wasm host stopped while it ran")
            entry = _Entry(spec, status)
            self._entries[spec.id] = entry
            self._save(entry)

    # ----- requests ------------------------------------------------------------------------------

    def handle(self, req: Request) -> Reply:
        try:
            if req.op is Op.CREATE:
                if req.spec is None:
                    raise DriverError("create needs a spec")
                return Reply(ok=True, status=self.create(req.spec))
            if req.op is Op.LIST:
                with self._lock:
                    return Reply(ok=True, items=[self._live(e) for e in self._entries.values()])
            if req.op is Op.VERSION:
                return Reply(ok=True, version=self.cache.version)
            if req.op is Op.STOP:
                return Reply(ok=True, status=self.stop(req.id, req.grace))
            if req.op is Op.REMOVE:
                self.remove(req.id)
                return Reply(ok=True)
            if req.op is Op.START:
                return Reply(ok=True, status=self.start(req.id))
            if req.op in (Op.PAUSE, Op.RESUME):
                return Reply(ok=True, status=self.pause(req.id, req.op is Op.PAUSE))
            if req.op is Op.WAIT:
                return Reply(ok=True, status=self.wait(req.id, req.grace))
            if req.op in (Op.INSPECT, Op.STATS):
                with self._lock:
                    return Reply(ok=True, status=self._live(self._get(req.id)))
            raise DriverError(f"unknown op {req.op!r}")
        except (DriverError, OSError) as exc:
            return reply_error(exc)

    def _get(self, cid: str) -> _Entry:
        entry = self._entries.get(cid)
        if entry is None:
            raise ContainerNotFound(cid)
        return entry

    def _live(self, entry: _Entry) -> InstanceStatus:
        run = entry.run
        if run is None or entry.status.state not in (_S.RUNNING, _S.PAUSED):
            return entry.status
        return replace(entry.status, pid=os.getpid(), cpu_usage_ns=run.cpu_ns(), memory_bytes=run.memory_bytes)

    def create(self, spec: ContainerSpec) -> InstanceStatus:
        with self._lock:
            if spec.id in self._entries or self._dir(spec.id).exists():
                raise DriverError(f"container {spec.id!r} already exists; remove it first or use another id")
            wasm = spec_module(spec.lower_dirs, spec.rootfs_path, spec.argv)
            loaded = self._compile(wasm)
            d = self._dir(spec.id)
            d.mkdir(parents=True)
            (d / "spec.json").write_bytes(msgspec.json.encode(spec))
            log_path = spec.log_path or str(d / "ctr.log")
            status = InstanceStatus(id=spec.id, name=spec.name, pod_uid=spec.pod_uid, state=_S.CREATED,
                                    module=str(wasm), log_path=log_path, cached=loaded.cached, load_ms=loaded.load_ms,
                                    memory_limit_bytes=spec.resources.memory_limit_bytes)
            entry = _Entry(spec, status, loaded)
            self._entries[spec.id] = entry
            self._save(entry)
            return status

    def _compile(self, wasm: Path) -> LoadedModule:
        try:
            return self.cache.load(wasm)
        except wasmtime.WasmtimeError as exc:
            raise SpecError("image", f"{wasm.name} is not a valid WebAssembly module: "
                            f"{str(exc).splitlines()[0]}") from None

    def start(self, cid: str) -> InstanceStatus:
        with self._lock:
            entry = self._get(cid)
            transition(entry.status.state, _S.RUNNING, cid)
            if entry.loaded is None:
                entry.loaded = self._compile(Path(entry.status.module))
            spec = entry.spec
            argv = list(spec.argv) or [Path(entry.status.module).name]
            log = CriLogWriter(Path(entry.status.log_path))
            run = Run(self.engine, entry.loaded.module, spec, argv, log,
                      lambda outcome: self._exited(cid, run, log, outcome), self.cpu_window)
            entry.run = run
            entry.status = replace(entry.status, state=_S.RUNNING, started_at=datetime.now(UTC), exit_code=None,
                                   finished_at=None, reason=None, message="", cached=entry.loaded.cached,
                                   load_ms=entry.loaded.load_ms)
            self._save(entry)
            run.start()
            return self._live(entry)

    def _exited(self, cid: str, run: Run, log: CriLogWriter, outcome: Outcome) -> None:
        log.close()
        with self._lock:
            entry = self._entries.get(cid)
            if entry is None or entry.run is not run:
                return
            entry.run = None
            entry.status = replace(entry.status, state=_S.STOPPED, pid=0, exit_code=outcome.exit_code,
                                   reason=outcome.reason, message=outcome.message, finished_at=outcome.finished_at)
            self._save(entry)
            self._changed.notify_all()

    def pause(self, cid: str, pause: bool) -> InstanceStatus:
        with self._lock:
            entry = self._get(cid)
            target = _S.PAUSED if pause else _S.RUNNING
            transition(entry.status.state, target, cid)
            if entry.run is not None:
                entry.run.pause() if pause else entry.run.resume()
            entry.status = replace(entry.status, state=target)
            self._save(entry)
            return self._live(entry)

    def stop(self, cid: str, grace: float, message: str = "stopped on request") -> InstanceStatus:
        with self._lock:
            entry = self._get(cid)
            if entry.status.state is _S.STOPPED:
                return entry.status
            transition(entry.status.state, _S.STOPPED, cid)
            run = entry.run
            if run is not None:
                run.request_stop(message)
        if run is not None and not run.join(max(grace, 0.0) + _STOP_WAIT):
            raise DriverError(f"container {cid!r} did not stop within {grace + _STOP_WAIT:g}s: it is blocked in a "
                              "WASI call (e.g. a long sleep or read) and stops when that call returns")
        with self._lock:
            return self._live(self._get(cid))

    def wait(self, cid: str, timeout: float) -> InstanceStatus:
        """The instance once it no longer runs, or as it is after ``timeout`` seconds."""
        with self._changed:
            entry = self._get(cid)
            self._changed.wait_for(lambda: entry.run is None, max(0.0, min(timeout, _MAX_WAIT)))
            return self._live(entry)

    def remove(self, cid: str) -> None:
        with self._lock:
            entry = self._get(cid)
            transition(entry.status.state, _S.REMOVED, cid)
            del self._entries[cid]
            shutil.rmtree(self._dir(cid), ignore_errors=True)

    def stop_all(self, message: str) -> None:
        with self._lock:
            ids = [cid for cid, e in self._entries.items() if e.run is not None]
        for cid in ids:
            with contextlib.suppress(DriverError):
                self.stop(cid, 0.0, message)
