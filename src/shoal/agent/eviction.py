"""Node-pressure eviction: hard thresholds, measuring them, choosing victims, and the eviction loop.

Like the kubelet's ``--eviction-hard``: ``memory.available`` (MemAvailable in /proc/meminfo) and
``nodefs.available`` (statvfs of the agent's data dir) are measured every few seconds; while one is
below its threshold the ``Evictor`` evicts one pod at a time, BestEffort first, then Burstable
(largest memory use over its request first), Guaranteed last, and measures again once the pod's
containers are stopped, so it acts before the kernel's OOM killer does. It posts an Evicted Event
per pod and keeps the Node's MemoryPressure/DiskPressure conditions up to date. Parsing, ranking
and messages are pure functions; the pod worker stops the containers and reports Failed/Evicted.
It must never pick the agent itself, and never restart an evicted pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from shoal.agent.pods import EVICTED
from shoal.agent.podspec import container_id
from shoal.agent.status import timestamp
from shoal.client import ApiError, AsyncClient, ClientError, to_model
from shoal.model.pod import Pod, PodPhase
from shoal.model.qos import QosClass, effective_requests, qos_class
from shoal.model.quantity import QuantityError, format_bytes, parse_bytes
from shoal.runtime.protocol import Driver, DriverError

__all__ = ["EVICTED", "Candidate", "Evictor", "Observation", "Pressure", "Signal",
           "Threshold", "eviction_message", "observe", "parse_thresholds", "pressures", "victim_order"]

log = logging.getLogger("shoal.agent.eviction")
CHECK_SECONDS = 2.0
_STOP_WAIT = 30.0  # seconds for an evicted pod's containers to stop before the next measurement


class Signal(StrEnum):
    MEMORY_AVAILABLE = "memory.available"
    NODEFS_AVAILABLE = "nodefs.available"


NODE_CONDITION = {Signal.MEMORY_AVAILABLE: "MemoryPressure", Signal.NODEFS_AVAILABLE: "DiskPressure"}
_CONDITION_REASONS = {  # signal → (reason while under pressure, reason otherwise)
    Signal.MEMORY_AVAILABLE: ("NodeHasInsufficientMemory", "NodeHasSufficientMemory"),
    Signal.NODEFS_AVAILABLE: ("NodeHasDiskPressure", "NodeHasNoDiskPressure"),
}
_RESOURCE = {Signal.MEMORY_AVAILABLE: "memory", Signal.NODEFS_AVAILABLE: "ephemeral-storage"}


@dataclass(frozen=True, slots=True)
class Threshold:
    signal: Signal
    quantity: int | None = None  # bytes, or
    percent: float | None = None  # of the signal's capacity

    def bytes_of(self, capacity: int) -> int:
        if self.quantity is not None:
            return self.quantity
        return int(capacity * (self.percent or 0.0) / 100)

    @property
    def text(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else _size(self.quantity or 0)


def _size(n: int) -> str:
    exact = format_bytes(n)
    return exact if not exact.isdigit() or n < 1024 else f"{n // 1024}Ki"


def parse_thresholds(text: str, flag: str = "--eviction-hard") -> tuple[Threshold, ...]:
    """``memory.available<100Mi,nodefs.available<10%`` → thresholds; "" turns eviction off."""
    out: dict[Signal, Threshold] = {}
    known = ", ".join(s.value for s in Signal)
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, lt, value = item.partition("<")
        name, value = name.strip(), value.strip()
        if not lt or not name or not value:
            raise ValueError(f'{flag}: "{item}" is not SIGNAL<VALUE; e.g. {flag} memory.available<100Mi')
        try:
            signal = Signal(name)
        except ValueError:
            raise ValueError(f'{flag}: unknown signal "{name}" in "{item}"; use one of {known}') from None
        if signal in out:
            raise ValueError(f'{flag}: {name} is given twice; give each signal one threshold')
        if value.endswith("%"):
            try:
                percent = float(value[:-1])
            except ValueError:
                percent = -1.0
            if not 0 < percent < 100:
                raise ValueError(f'{flag}: "{value}" in "{item}" is not a percentage between 0% and 100%, e.g. 10%')
            out[signal] = Threshold(signal, percent=percent)
            continue
        try:
            quantity = parse_bytes(value)
        except QuantityError as exc:
            raise ValueError(f'{flag}: in "{item}": {exc}') from None
        if quantity <= 0:
            raise ValueError(f'{flag}: "{value}" in "{item}" must be a positive size, e.g. 100Mi')
        out[signal] = Threshold(signal, quantity=quantity)
    return tuple(out.values())


@dataclass(frozen=True, slots=True)
class Observation:
    available: int
    capacity: int


def observe(data_dir: Path, meminfo: Path = Path("/proc/meminfo")) -> dict[Signal, Observation]:
    """MemAvailable/MemTotal of the host and the free/total space of the filesystem holding ``data_dir``."""
    fields: dict[str, int] = {}
    with open(meminfo, encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                fields[key] = int(rest.split()[0]) * 1024
    disk = os.statvfs(data_dir)
    return {Signal.MEMORY_AVAILABLE: Observation(fields.get("MemAvailable", 0), fields.get("MemTotal", 0)),
            Signal.NODEFS_AVAILABLE: Observation(disk.f_bavail * disk.f_frsize, disk.f_blocks * disk.f_frsize)}


@dataclass(frozen=True, slots=True)
class Pressure:
    threshold: Threshold
    available: int
    limit: int  # the threshold in bytes

    @property
    def message(self) -> str:
        return (f"the node was low on {_RESOURCE[self.threshold.signal]}: {self.threshold.signal.value} is "
                f"{_size(self.available)}, below the eviction threshold {self.threshold.text}")


def pressures(thresholds: Sequence[Threshold], observed: Mapping[Signal, Observation]) -> list[Pressure]:
    out = []
    for t in thresholds:
        seen = observed.get(t.signal)
        if seen is not None and seen.capacity > 0 and seen.available < t.bytes_of(seen.capacity):
            out.append(Pressure(t, seen.available, t.bytes_of(seen.capacity)))
    return out


@dataclass(frozen=True, slots=True)
class Candidate:
    uid: str
    key: str  # namespace/name
    qos: QosClass
    memory_usage: int
    memory_request: int
    priority: int = 0


_DONE = (PodPhase.SUCCEEDED.value, PodPhase.FAILED.value)  # completed pods hold nothing worth evicting
_QOS_RANK = {QosClass.BEST_EFFORT: 0, QosClass.BURSTABLE: 1, QosClass.GUARANTEED: 2}


def victim_order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Who goes first: BestEffort, then Burstable, then Guaranteed; within a class the pod using most
    memory above its request, then the lower priority, then by name (stable)."""
    return sorted(candidates, key=lambda c: (_QOS_RANK[c.qos], -(c.memory_usage - c.memory_request),
                                             c.priority, c.key))


def eviction_message(pressure: Pressure, victim: Candidate) -> str:
    t = pressure.threshold
    return (f"The node was low on {_RESOURCE[t.signal]}: {t.signal.value} was {_size(pressure.available)}, below "
            f"the eviction threshold {t.text}; this {victim.qos.value} pod was using {_size(victim.memory_usage)} "
            f"of memory (request {_size(victim.memory_request)})")


def memory_request(pod: Pod) -> int:
    return sum(int(r) for c in pod.spec.containers
               if isinstance(r := effective_requests(c).get("memory", 0), int))


class Evictor:
    """The eviction loop of one node. ``workers`` gives the pod workers (``uid``, ``key``, ``pod``,
    ``status``, ``deleted``, ``eviction``, ``evict(message)`` and ``evicted`` are what it uses)."""

    def __init__(self, thresholds: Sequence[Threshold], data_dir: Path, driver: Driver,
                 workers: Callable[[], Iterable[Any]], node_name: str, interval: float = CHECK_SECONDS,
                 meminfo: Path = Path("/proc/meminfo"),
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.thresholds = tuple(thresholds)
        self.clock = clock
        self.data_dir, self.driver, self.workers, self.node_name = data_dir, driver, workers, node_name
        self.interval, self.meminfo = interval, meminfo
        self.active: dict[Signal, Pressure] = {}
        self._events: list[dict[str, Any]] = []
        self._written: dict[str, str] | None = None  # condition type → status last written to the Node
        self._report = asyncio.Event()

    async def _candidates(self) -> list[Candidate]:
        out = []
        for worker in list(self.workers()):
            if worker.deleted or worker.eviction is not None or worker.status.get("phase") in _DONE:
                continue
            pod = to_model(worker.pod)
            if not isinstance(pod, Pod):
                continue
            usage = 0
            for c in pod.spec.containers:
                with contextlib.suppress(DriverError, OSError):
                    usage += (await self.driver.stats(container_id(worker.uid, c.name))).memory_working_set_bytes
            out.append(Candidate(worker.uid, worker.key, qos_class(pod.spec), usage, memory_request(pod),
                                 pod.spec.priority))
        return out

    async def check(self) -> Candidate | None:
        """Measure once; under pressure evict the first victim and wait for its containers to stop."""
        now = pressures(self.thresholds, observe(self.data_dir, self.meminfo))
        active = {p.threshold.signal: p for p in now}
        if set(active) != set(self.active):
            for signal in set(active) - set(self.active):
                log.warning("node %s: %s", self.node_name, active[signal].message)
            self._report.set()
        self.active = active
        if not now:
            return None
        order = victim_order(await self._candidates())
        if not order:
            return None
        victim = order[0]
        worker = next((w for w in self.workers() if w.uid == victim.uid), None)
        if worker is None:
            return None
        message = eviction_message(now[0], victim)
        log.warning("node %s: evicting pod %s: %s", self.node_name, victim.key, message)
        worker.evict(message)
        self._events.append(self._event(worker.pod, message))
        self._report.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.evicted.wait(), _STOP_WAIT)
        return victim

    def _event(self, pod: dict[str, Any], message: str) -> dict[str, Any]:
        meta = pod.get("metadata") or {}
        name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
        digest = hashlib.sha256(f"{uid}/{EVICTED}".encode()).hexdigest()[:10]
        stamp = timestamp(self.clock())
        return {"apiVersion": "shoal/v1", "kind": "Event",
                "metadata": {"name": f"{name[:242]}.{digest}", "namespace": meta.get("namespace") or "default"},
                "involvedObject": {"kind": "Pod", "name": name, "namespace": meta.get("namespace") or "default",
                                   "uid": uid, "apiVersion": "shoal/v1"},
                "reason": EVICTED, "message": message, "type": "Warning", "source": f"agent/{self.node_name}",
                "firstTimestamp": stamp, "lastTimestamp": stamp}

    def conditions(self) -> dict[str, tuple[str, str, str]]:
        """Node condition type → (status, reason, message) for every signal with a threshold."""
        out = {}
        for t in self.thresholds:
            p = self.active.get(t.signal)
            low, fine = _CONDITION_REASONS[t.signal]
            out[NODE_CONDITION[t.signal]] = ("True", low, p.message) if p else (
                "False", fine, f"{t.signal.value} is above the eviction threshold {t.text}")
        return out

    async def _write_conditions(self, client: AsyncClient) -> None:
        wanted = self.conditions()
        if self._written == {k: v[0] for k, v in wanted.items()}:
            return
        stamp = timestamp(self.clock())
        for _ in range(5):
            node = await client.get("Node", None, self.node_name)
            current = [c for c in (node.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
            old = {c.get("type"): c for c in current}
            merged = [c for c in current if c.get("type") not in wanted]
            for ctype, (status, reason, message) in wanted.items():
                prior = old.get(ctype) or {}
                since = prior.get("lastTransitionTime") if prior.get("status") == status else None
                merged.append({"type": ctype, "status": status, "reason": reason, "message": message,
                               "lastTransitionTime": since or stamp})
            patch = {"metadata": {"resourceVersion": (node.get("metadata") or {}).get("resourceVersion")},
                     "status": {"conditions": merged}}
            try:
                await client.merge_patch("Node", None, self.node_name, patch)
            except ApiError as exc:
                if exc.status_code == 409:
                    continue
                raise
            self._written = {k: v[0] for k, v in wanted.items()}
            return

    async def _flush(self, client: AsyncClient) -> None:
        while self._events:
            try:
                await client.create(self._events[0])
            except ApiError as exc:
                if exc.status_code != 409:  # 409: posted before a retry
                    raise
            self._events.pop(0)
        await self._write_conditions(client)

    async def _reporter(self, client: AsyncClient, registered: asyncio.Event, stop: asyncio.Event) -> None:
        await registered.wait()
        self._report.set()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._report.wait(), self.interval * 5)
            self._report.clear()
            try:
                await self._flush(client)
            except ClientError as exc:
                self._written = None
                log.info("node %s: pressure report not written: %s (retrying)", self.node_name, exc)
                await asyncio.sleep(self.interval)
                self._report.set()

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except (OSError, ValueError, DriverError) as exc:
                log.warning("node %s: eviction check failed: %s", self.node_name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def run(self, client: AsyncClient, registered: asyncio.Event, stop: asyncio.Event) -> None:
        """Measure and evict until ``stop``; report Events and Node conditions once registered."""
        if not self.thresholds:
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._loop(stop), name="eviction")
            group.create_task(self._reporter(client, registered, stop), name="eviction report")
