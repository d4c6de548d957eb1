"""Container probes: startup, then liveness and readiness, each on its own periodic timer.

Owns ``ProbeCounter`` (pure: consecutive successes/failures against the probe's thresholds) and
``ContainerProbes``, the probe tasks of one running container instance. Startup runs first; the
other two wait until it passes. A failed startup or liveness probe sets ``kill_reason`` and stops
probing (the pod worker kills the container and its restart policy decides what follows); a
readiness change flips ``ready``. Every change calls ``on_change`` so the worker re-publishes at
once. Each check sleeps ``periodSeconds`` between runs: no polling loop. It must not stop
containers or write status itself (``pods`` does); the checks are in ``probe_checks``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from shoal.agent.probe_checks import ProbeTarget, run_check
from shoal.model.pod import Container, Probe
from shoal.runtime.protocol import Driver

__all__ = ["ContainerProbes", "ProbeCounter", "ProbeKind", "has_probes"]

log = logging.getLogger("shoal.agent.probes")
SECOND = 1.0  # wall-clock seconds per probe second (tests shrink it; the agent never changes it)


class ProbeKind(StrEnum):
    STARTUP = "Startup"
    LIVENESS = "Liveness"
    READINESS = "Readiness"


@dataclass(slots=True)
class ProbeCounter:
    """Consecutive results against thresholds; ``passing`` is None until a threshold is first met."""

    success_threshold: int = 1
    failure_threshold: int = 3
    successes: int = 0
    failures: int = 0
    passing: bool | None = None

    def record(self, ok: bool) -> bool:
        """Count one result; True when ``passing`` changed."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= max(self.success_threshold, 1) and self.passing is not True:
                self.passing = True
                return True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= max(self.failure_threshold, 1) and self.passing is not False:
                self.passing = False
                return True
        return False


def has_probes(container: Container) -> bool:
    return any(p is not None for p in (container.startup_probe, container.liveness_probe, container.readiness_probe))


class ContainerProbes:
    """The probes of one container instance (one start: a restarted container gets new ones)."""

    def __init__(self, container: Container, target: ProbeTarget, driver: Driver,
                 on_change: Callable[[], None]) -> None:
        self.container = container
        self.target = target
        self._driver = driver
        self._on_change = on_change
        self.started = container.startup_probe is None
        self.ready = container.readiness_probe is None
        self.kill_reason = ""  # set when startup or liveness failed: the container must be killed
        self.message = ""  # the latest failure a user should see (e.g. why it is not ready)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def is_ready(self) -> bool:
        return self.started and self.ready and not self.kill_reason

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"probes {self.target.container_id}")

    def cancel(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        """Stop probing and wait until the probe task has ended."""
        self.cancel()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait([task])

    async def _run(self) -> None:
        c = self.container
        try:
            if c.startup_probe is not None and not await self._loop(ProbeKind.STARTUP, c.startup_probe):
                return
            loops = [self._loop(kind, p) for kind, p in ((ProbeKind.LIVENESS, c.liveness_probe),
                                                          (ProbeKind.READINESS, c.readiness_probe)) if p is not None]
            await asyncio.gather(*loops)  # cancelling this task cancels both
        except asyncio.CancelledError:
            raise
        except Exception:  # a probe bug must not take the pod worker down
            log.exception("probes of container %s stopped", self.target.container_id)

    async def _loop(self, kind: ProbeKind, probe: Probe) -> bool:
        """Run one probe until it decides something final; False when the container must die."""
        counter = ProbeCounter(1 if kind is not ProbeKind.READINESS else probe.success_threshold,
                               probe.failure_threshold)
        if probe.initial_delay_seconds > 0:
            await asyncio.sleep(probe.initial_delay_seconds * SECOND)
        while not self._closed:  # stop even if a cancellation got lost
            ok, detail = await run_check(probe, self.target, self._driver)
            changed = counter.record(ok)
            if not ok:
                log.info("container %s: %s probe failed (%d/%d): %s", self.target.container_id, kind.value,
                         counter.failures, probe.failure_threshold, detail)
            if kind is ProbeKind.READINESS:
                if changed:
                    self.ready = bool(counter.passing)
                    self.message = "" if self.ready else f"Readiness probe failed: {detail}"
                    self._on_change()
            elif counter.passing is False:
                self.kill_reason = (f"{kind.value} probe failed {counter.failures} time(s) in a row: {detail}")
                self._on_change()
                return False
            elif kind is ProbeKind.STARTUP and counter.passing:
                self.started = True
                self._on_change()
                return True
            await asyncio.sleep(max(probe.period_seconds, 1) * SECOND)
        return True
