"""One pod on this node: a level-based worker that makes its containers match the desired pod.

Each ``PodWorker`` loops: read the desired pod and the driver's view, create/start what is
missing (image first; the first container is the sandbox whose net/ipc/uts namespaces the others
join), restart stopped containers by the pod's restart policy with crash-loop backoff, publish
the resulting status, then sleep until something happens — a new pod version, a container exit
(pidfd, no polling), or a backoff deadline. Deleted pods are torn down (SIGTERM, SIGKILL after
the grace period, containers, rootfs, cgroups and pod dirs removed). Cancelling a worker (agent
shutdown) leaves containers running. It must not talk to the server: status goes to a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.agent.cache import PodCache
from shoal.agent.images import ImageService
from shoal.agent.podspec import build_container_spec, container_id, empty_dirs
from shoal.agent.restarts import Decision, RestartTrack, decide, restarted
from shoal.agent.status import ContainerView, pod_status, timestamp
from shoal.client import to_model
from shoal.model.pod import ContainerState, Pod, qos_class
from shoal.runtime.protocol import ContainerInfo, ContainerNotFound, Driver, DriverError, sandbox_joins

__all__ = ["PodContext", "PodWorker"]

log = logging.getLogger("shoal.agent.pods")
_ERROR_RETRY_MAX = 30.0
_EXIT_SETTLE = 40  # inspects, 25 ms apart, for conmon to record an exit code


@dataclass(slots=True)
class PodContext:
    driver: Driver
    images: ImageService | None
    cache: PodCache
    pods_dir: Path
    host_ip: str
    publish: Callable[[str], None]  # "this pod's status changed" (uid)
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    watch_pids: bool = True  # wake on container exits through pidfds (off for the in-memory fake)


class PodWorker:
    def __init__(self, ctx: PodContext, pod: dict[str, Any]) -> None:
        self.ctx = ctx
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.status: dict[str, Any] = dict(pod.get("status") or {})
        self.deleted = False
        self.done = asyncio.Event()
        self._wake = asyncio.Event()
        self._tracks: dict[str, RestartTrack] = ctx.cache.tracks(self.uid)
        self._waiting: dict[str, tuple[str, str]] = {}
        self._error_delay = 0.0

    @property
    def key(self) -> str:
        meta = self.pod["metadata"]
        return f"{meta.get('namespace') or 'default'}/{meta['name']}"

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self._wake.set()

    def delete(self) -> None:
        self.deleted = True
        self._wake.set()

    def poke(self) -> None:
        self._wake.set()

    # ----- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    if self.deleted:
                        await self._teardown()
                        return
                    wait_until, pids = await self._sync()
                    if not any(self._waiting.values()):
                        self._error_delay = 0.0
                except Exception as exc:  # a pod's failure must not stop the agent
                    delay = self._bump_error()
                    if isinstance(exc, DriverError | OSError | ValueError):
                        log.warning("pod %s: %s; retrying in %gs", self.key, exc, delay)
                    else:
                        log.exception("pod %s: unexpected error; retrying in %gs", self.key, delay)
                    wait_until, pids = self.ctx.clock() + dt.timedelta(seconds=delay), []
                await self._sleep(wait_until, pids)
        finally:
            self.done.set()

    async def _sleep(self, until: dt.datetime | None, pids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        fds: list[int] = []
        for pid in pids if self.ctx.watch_pids else ():
            try:
                fd = os.pidfd_open(pid)
            except OSError:  # it exited between the inspect and now
                self._wake.set()
                continue
            fds.append(fd)
            loop.add_reader(fd, self._wake.set)
        try:
            timeout = None if until is None else max((until - self.ctx.clock()).total_seconds(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            for fd in fds:
                loop.remove_reader(fd)
                os.close(fd)

    # ----- one reconcile step --------------------------------------------------------------------

    async def _inspect(self, cid: str) -> ContainerInfo | None:
        try:
            info = await self.ctx.driver.inspect(cid)
        except ContainerNotFound:
            return None
        for _ in range(_EXIT_SETTLE):
            if info.state is not ContainerState.STOPPED or info.exit_code is not None:
                break
            await asyncio.sleep(0.025)
            info = await self.ctx.driver.inspect(cid)
        return info

    async def _sync(self) -> tuple[dt.datetime | None, list[int]]:
        pod = to_model(self.pod)
        if not isinstance(pod, Pod):
            raise ValueError(f"expected a Pod, got {type(pod).__name__}")
        now = self.ctx.clock()
        policy = pod.spec.restart_policy
        views: list[ContainerView] = []
        wake: dt.datetime | None = None
        sandbox_pid = 0
        for index, c in enumerate(pod.spec.containers):
            cid = container_id(self.uid, c.name)
            info = await self._inspect(cid)
            track = self._tracks.get(c.name, RestartTrack())
            if info is None and not track.finished:
                info = await self._create(pod, index, sandbox_pid)
            elif info is not None and info.state is ContainerState.CREATED:
                info = await self.ctx.driver.start(cid)
            if info is not None and info.state is ContainerState.STOPPED and info.exit_code is None:
                info = await self._inspect(cid)  # it exited at once: let conmon record the code
            if info is not None:
                decision, new_track = decide(info, track, policy, now)
                if decision is Decision.RESTART:
                    new_track = restarted(new_track)
                    self._set_track(c.name, new_track)
                    info = await self._recreate(pod, index, sandbox_pid, cid)
                    if info is None or info.state is ContainerState.STOPPED:
                        wake = now  # look again at once: it may need a backoff already
                elif decision is Decision.WAIT and new_track.next_start is not None:
                    wake = new_track.next_start if wake is None else min(wake, new_track.next_start)
                self._set_track(c.name, new_track)
            if info is not None and info.state is ContainerState.RUNNING:
                self._waiting.pop(c.name, None)
                if index == 0:
                    sandbox_pid = info.pid
            reason, message = self._waiting.get(c.name, ("", ""))
            if info is None and reason and wake is None:
                wake = now + dt.timedelta(seconds=self._bump_error())
            views.append(ContainerView(c.name, c.image, info, self._tracks.get(c.name, RestartTrack()),
                                       reason, message))
        self._publish(pod, views, now)
        pids = [v.info.pid for v in views if v.info is not None and v.info.state is ContainerState.RUNNING
                and v.info.pid > 0]
        return wake, pids

    def _bump_error(self) -> float:
        self._error_delay = min(max(self._error_delay * 2, 1.0), _ERROR_RETRY_MAX)
        return self._error_delay

    def _set_track(self, name: str, track: RestartTrack) -> None:
        if self._tracks.get(name, RestartTrack()) != track:
            self._tracks[name] = track
            self.ctx.cache.put_track(self.uid, name, track)

    async def _recreate(self, pod: Pod, index: int, sandbox_pid: int, cid: str) -> ContainerInfo | None:
        if index > 0 and not sandbox_pid:
            self._waiting[pod.spec.containers[index].name] = ("SandboxNotReady", "waiting for the pod's first "
                                                               "container to run")
            return await self._inspect(cid)
        with contextlib.suppress(ContainerNotFound):
            await self.ctx.driver.remove(cid)
        return await self._create(pod, index, sandbox_pid)

    async def _create(self, pod: Pod, index: int, sandbox_pid: int) -> ContainerInfo | None:
        """Create and start container ``index``; None (with a waiting reason) when it cannot yet."""
        from shoal.image.errors import ImageError

        c = pod.spec.containers[index]
        if index > 0 and not sandbox_pid:
            self._waiting[c.name] = ("SandboxNotReady", "waiting for the pod's first container to run")
            return None
        if self.ctx.images is None:
            self._waiting[c.name] = ("ErrImagePull", "this agent has no image store")
            return None
        try:
            image = await self.ctx.images.prepare(c.image, c.image_pull_policy)
        except ImageError as exc:
            self._waiting[c.name] = ("ErrImagePull", str(exc))
            return None
        pod_dir = self.ctx.pods_dir / self.uid
        try:
            volumes = {name: str(pod_dir / "volumes" / name) for name in empty_dirs(pod)}
            log_dir = pod_dir / "logs" / c.name
            restarts = self._tracks.get(c.name, RestartTrack()).restart_count
            spec = build_container_spec(pod, index, image.defaults, lower_dirs=image.lower_dirs,
                                        joins=sandbox_joins(sandbox_pid) if index > 0 else (),
                                        log_path=str(log_dir / f"{restarts}.log"), volume_dirs=volumes)
        except DriverError as exc:
            self._waiting[c.name] = ("CreateContainerConfigError", str(exc))
            return None
        for directory in (*volumes.values(), str(log_dir)):
            Path(directory).mkdir(parents=True, exist_ok=True)
        if not self.ctx.cache.start_time(self.uid):
            self.ctx.cache.set_start_time(self.uid, timestamp(self.ctx.clock()))
        await self.ctx.driver.create(spec)
        self._waiting.pop(c.name, None)
        return await self.ctx.driver.start(spec.id)

    def _publish(self, pod: Pod, views: list[ContainerView], now: dt.datetime) -> None:
        status = pod_status(views, pod.spec.restart_policy, host_ip=self.ctx.host_ip,
                            start_time=self.ctx.cache.start_time(self.uid), previous=self.status, now=now)
        status["qosClass"] = qos_class(pod.spec)
        if status != self.status:
            self.status = status
            self.ctx.publish(self.uid)

    # ----- deletion ------------------------------------------------------------------------------

    async def _teardown(self) -> None:
        grace = float((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        mine = [info for info in await self.ctx.driver.recover() if info.pod_uid == self.uid]
        await asyncio.gather(*(self._stop_and_remove(info, grace) for info in mine))
        shutil.rmtree(self.ctx.pods_dir / self.uid, ignore_errors=True)
        self.ctx.cache.delete_pod(self.uid)
        log.info("pod %s: removed %d container(s)", self.key, len(mine))

    async def _stop_and_remove(self, info: ContainerInfo, grace: float) -> None:
        driver = self.ctx.driver
        if info.state in (ContainerState.RUNNING, ContainerState.PAUSED):
            if info.state is ContainerState.PAUSED:
                await driver.resume(info.id)
            await driver.stop(info.id, grace)
        with contextlib.suppress(ContainerNotFound):
            await driver.remove(info.id)
