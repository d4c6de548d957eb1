"""The probes of one pod's containers, as its ``PodWorker`` drives them.

``PodProbes`` starts a container's probes (``probes.ContainerProbes``) when a running instance
appears, stops them when it goes or is replaced, keeps Ready across an agent restart for an
adopted container that was ready, kills a container its startup or liveness probe gave up on
(the restart policy does the rest) and says why a container is not ready (``note``). It must not
decide restarts or publish status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.agent.probe_checks import ProbeTarget
from shoal.agent.probes import ContainerProbes, has_probes
from shoal.agent.restarts import RestartTrack
from shoal.agent.status import timestamp
from shoal.model.pod import Container, ContainerState
from shoal.runtime.protocol import ContainerInfo, Driver

__all__ = ["PodProbes"]

UNHEALTHY = "Unhealthy"


class PodProbes:
    def __init__(self, driver: Driver, on_change: Callable[[], None]) -> None:
        self._driver = driver
        self._on_change = on_change
        self._probes: dict[str, ContainerProbes] = {}
        self._kill_notes: dict[str, tuple[int, str]] = {}  # container → (restart count it led to, message)

    def get(self, name: str) -> ContainerProbes | None:
        return self._probes.get(name)

    async def sync(self, c: Container, cid: str, info: ContainerInfo | None, pod_ip: str,
                   status: dict[str, Any]) -> bool:
        """Start or stop the container's probes to match its running instance; is it ready?"""
        running = info is not None and info.state is ContainerState.RUNNING and info.pid > 0
        probes = self._probes.get(c.name)
        if probes is not None and (not running or info is None or probes.target.pid != info.pid):
            await self.stop(c.name)
            probes = None
        if not running or info is None or not has_probes(c):
            return True
        if probes is None:
            ports = {p.name: p.container_port for p in c.ports if p.name}
            probes = ContainerProbes(c, ProbeTarget(cid, info.pid, pod_ip, ports), self._driver, self._on_change)
            if _was_ready(status, c.name, info):  # adopted after an agent restart: keep its Ready as it was
                probes.started = probes.ready = True
            self._probes[c.name] = probes
            probes.start()
        return probes.is_ready

    async def stop(self, name: str) -> None:
        probes = self._probes.pop(name, None)
        if probes is not None:
            await probes.close()

    async def stop_all(self) -> None:
        for probes in self._probes.values():
            probes.cancel()
        for name in list(self._probes):
            await self.stop(name)

    def kill_reason(self, name: str, info: ContainerInfo) -> str:
        """Why the running ``info`` must be killed ('' when it must not)."""
        probes = self._probes.get(name)
        if info.state is ContainerState.RUNNING and probes is not None and probes.target.pid == info.pid:
            return probes.kill_reason
        return ""

    async def note_kill(self, name: str, track: RestartTrack, message: str) -> None:
        self._kill_notes[name] = (track.restart_count + 1, message)
        await self.stop(name)

    def note(self, name: str, track: RestartTrack) -> tuple[str, str]:
        """(Unhealthy, why) while a probe holds the container back or just killed it; else ('', '')."""
        kill = self._kill_notes.get(name)
        if kill is not None and track.restart_count <= kill[0]:
            return UNHEALTHY, kill[1]
        probes = self._probes.get(name)
        if probes is not None and probes.message and not probes.is_ready:
            return UNHEALTHY, probes.message
        return "", ""


def _was_ready(status: dict[str, Any], name: str, info: ContainerInfo) -> bool:
    started = timestamp(info.started_at) if info.started_at else ""
    return any(s.get("name") == name and s.get("containerId") == info.id and s.get("ready") is True
               and s.get("startedAt") == started for s in status.get("containerStatuses") or [])
