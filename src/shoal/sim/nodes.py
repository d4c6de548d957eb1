"""Hollow nodes: register N simulated nodes that heartbeat and report the pods bound to
them as Running, without running anything.

This is how the control plane and the scheduler are exercised at fleet scale. It talks to the
server only through the public API (``shoal.client``), exactly as real agents do.

A pod can ask to be reported broken, so that rollouts, deadlines and rollbacks can be tested
without real containers: the pod label ``shoal.io/sim-fail`` (``CrashLoopBackOff``,
``ImagePullBackOff`` or ``Unready``), or a container image whose name contains ``crash``,
``pullfail`` or ``unready``. Such a pod never becomes Ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.client import ApiError, AsyncClient, ClientConfig, ClientError
from shoal.sim.jobs import PodFinisher

log = logging.getLogger("shoal.sim")
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_CHUNK = 2000
WORKERS = 32


@dataclass(frozen=True)
class FleetSpec:
    count: int
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    zones: tuple[str, ...] = ("a", "b", "c")
    arch: str = "amd64"
    prefix: str = "sim"
    labels: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        width = max(4, len(str(self.count)))
        return [f"{self.prefix}-{i:0{width}d}" for i in range(self.count)]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_manifest(spec: FleetSpec, index: int, name: str) -> dict[str, Any]:
    zone = spec.zones[index % len(spec.zones)] if spec.zones else ""
    labels = {"shoal.io/arch": spec.arch, "shoal.io/hostname": name, "shoal.io/simulated": "true",
              **({"shoal.io/zone": zone} if zone else {}), **spec.labels}
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods), "ephemeral-storage": "32Gi"}
    octets = f"{10 + index // 65536 % 200}.{index // 256 % 256}.{index % 256}"
    return {
        "apiVersion": "shoal/v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": f"10.{200 + index // 65536 % 50}.{index // 256 % 256}.0/24"},
        "status": {"capacity": resources, "allocatable": resources, "runtimes": ["oci", "wasm"],
                   "power": {"source": "mains"}, "rttMs": {z: (1.0 if z == zone else 20.0) for z in spec.zones},
                   "addresses": [{"type": "InternalIP", "address": f"198.{octets}"}],
                   "nodeInfo": {"architecture": spec.arch, "agentVersion": "sim"}},
    }


LABEL_SIM_FAIL = "shoal.io/sim-fail"
CRASH_LOOP = "CrashLoopBackOff"
IMAGE_PULL = "ImagePullBackOff"
UNREADY = "Unready"
_IMAGE_MARKERS = (("crash", CRASH_LOOP), ("pullfail", IMAGE_PULL), ("unready", UNREADY))


def failure_of(pod: dict[str, Any]) -> str:
    """The failure a pod asks the hollow node to simulate ("" for none); see the module docstring."""
    label = str(pod.get("metadata", {}).get("labels", {}).get(LABEL_SIM_FAIL, ""))
    if label in (CRASH_LOOP, IMAGE_PULL, UNREADY):
        return label
    for container in pod.get("spec", {}).get("containers", []):
        image = str(container.get("image", "")).lower()
        for marker, failure in _IMAGE_MARKERS:
            if marker in image:
                return failure
    return ""


def failing_status(pod: dict[str, Any], index: int, failure: str) -> dict[str, Any]:
    """A pod that never becomes Ready: crash-looping, unable to pull its image, or failing readiness."""
    now = _now()
    containers = pod.get("spec", {}).get("containers", [])
    status = dict(pod.get("status", {}))
    conditions = [c for c in status.get("conditions", []) if c.get("type") not in ("Ready", "ContainersReady")]
    conditions += [{"type": t, "status": "False", "reason": failure, "lastTransitionTime": now}
                   for t in ("Ready", "ContainersReady")]
    running = failure == UNREADY
    messages = {CRASH_LOOP: "back-off restarting failed container (simulated)",
                IMAGE_PULL: "image pull failed: not found (simulated)", UNREADY: "readiness probe failed (simulated)"}
    status.update({
        "phase": "Pending" if failure == IMAGE_PULL else "Running", "conditions": conditions,
        "containerStatuses": [{"name": c["name"], "state": "Running" if running else "Waiting", "ready": False,
                               "restartCount": 3 if failure == CRASH_LOOP else 0, "image": c.get("image", ""),
                               "reason": failure, "message": messages[failure]} for c in containers],
    })
    if failure != IMAGE_PULL:
        status.update({"startTime": now,
                       "podIP": f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"})
    return {**pod, "status": status}


def running_status(pod: dict[str, Any], index: int) -> dict[str, Any]:
    failure = failure_of(pod)
    if failure:
        return failing_status(pod, index, failure)
    now = _now()
    containers = pod.get("spec", {}).get("containers", [])
    status = dict(pod.get("status", {}))
    conditions = [c for c in status.get("conditions", []) if c.get("type") not in ("Ready", "ContainersReady")]
    conditions += [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                   {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]
    status.update({
        "phase": "Running", "startTime": now, "podIP": f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}",
        "conditions": conditions,
        "containerStatuses": [{"name": c["name"], "state": "Running", "ready": True, "restartCount": 0,
                               "image": c.get("image", ""), "startedAt": now} for c in containers],
    })
    return {**pod, "status": status}


class HollowFleet:
    def __init__(self, config: ClientConfig, spec: FleetSpec,
                 on_running: Callable[[int], None] | None = None) -> None:
        self.config = config
        self.spec = spec
        self.names = spec.names()
        self._mine = set(self.names)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._started = 0
        self.on_running = on_running

    async def register(self, client: AsyncClient) -> None:
        semaphore = asyncio.Semaphore(64)

        async def one(index: int, name: str) -> None:
            async with semaphore:
                manifest = node_manifest(self.spec, index, name)
                with contextlib.suppress(ApiError):
                    await client.create(manifest)
                    return
                await client.put_status(manifest)  # it existed: refresh its status

        async with asyncio.TaskGroup() as group:
            for index, name in enumerate(self.names):
                group.create_task(one(index, name))
        await self._heartbeat_once(client)

    async def _heartbeat_once(self, client: AsyncClient) -> None:
        for start in range(0, len(self.names), HEARTBEAT_CHUNK):
            await client.heartbeats(self.names[start:start + HEARTBEAT_CHUNK])

    async def heartbeat(self, client: AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._heartbeat_once(client)
            except ClientError as exc:  # the server may be restarting: keep beating
                log.warning("heartbeat failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.1, HEARTBEAT_SECONDS - (time.monotonic() - started)))

    def _offer(self, pod: dict[str, Any]) -> None:
        status = pod.get("status", {})
        if pod.get("spec", {}).get("nodeName") in self._mine and status.get("phase") == "Pending" \
                and not status.get("containerStatuses") and not pod.get("metadata", {}).get("deletionTimestamp"):
            self._queue.put_nowait(pod)

    async def follow_pods(self, client: AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                items, revision = await client.list("pods")
                for pod in items:
                    self._offer(pod)
                async for kind, pod in client.watch("pods", None, revision):
                    if kind in ("ADDED", "MODIFIED"):
                        self._offer(pod)
                    if stop.is_set():
                        return
            except ClientError as exc:  # 410, or the server restarting: list again after a pause
                log.info("pod watch ended (%s); re-listing", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def report(self, client: AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            pod = await self._queue.get()
            self._started += 1
            try:
                await client.put_status(running_status(pod, self._started))
            except ApiError as exc:
                if exc.status_code not in (404, 409):  # 409: changed since; its newer event follows
                    log.warning("status update for %s failed: %s", pod["metadata"]["name"], exc)
                continue
            except ClientError as exc:
                log.warning("status update for %s failed: %s", pod["metadata"]["name"], exc)
                self._queue.put_nowait(pod)
                await asyncio.sleep(1.0)
                continue
            if self.on_running is not None:
                self.on_running(self._started)

    async def run(self, stop: asyncio.Event) -> None:
        async with AsyncClient(self.config) as client:
            await self.register(client)
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.heartbeat(client, stop)),
                         group.create_task(self.follow_pods(client, stop))]
                tasks += [group.create_task(self.report(client, stop)) for _ in range(WORKERS)]
                tasks.append(group.create_task(PodFinisher(self._mine).run(client, stop)))  # Job pods end
                await stop.wait()
                for task in tasks:
                    task.cancel()
