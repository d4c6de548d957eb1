"""One pod on this node: a level-based worker that makes its containers match the desired pod.

Each ``PodWorker`` loops: read the desired pod and the driver's view, create/start what is
missing (configMap/secret volumes written and env resolved through ``configsource``; init
containers first, in order, each to completion — ``initcontainers``; image first; the pod's
network namespace is wired by pod networking before the first container, every container joins
it, and the others join the first one's ipc/uts), restart stopped containers by the pod's
restart policy with crash-loop backoff, publish the resulting status, then sleep until something
happens — a new pod version, a container exit (pidfd, no polling), a backoff deadline, or a
change of a ConfigMap/Secret it uses (its volumes are refreshed in place; running containers keep
their env). A pod annotated ``shoal.io/paused: "true"`` has its containers frozen (cgroup
freezer), its probes suspended and nothing (re)started until the annotation goes.
An evicted pod (``evict``, from node-pressure eviction) has its containers killed and stays
Failed/Evicted on this node, across agent restarts (a marker in its pod dir). Deleted pods are
torn down (SIGTERM, SIGKILL after the grace period, containers, rootfs, cgroups and pod dirs
removed, then the pod network). Cancelling a worker (agent shutdown) leaves containers running.
It must not talk to the server: status goes to a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shoal.agent.cache import PodCache
from shoal.agent.configenv import ConfigMissing, pod_refs
from shoal.agent.configsource import ConfigSource, sync_volumes
from shoal.agent.images import ImageService
from shoal.agent.initcontainers import InitProgress, InitSteps, run_init
from shoal.agent.podnet import pod_bandwidth, pod_joins, port_mappings
from shoal.agent.podprobes import PodProbes
from shoal.agent.podspec import build_container_spec, check_supported, container_id, volume_names
from shoal.agent.restarts import Decision, RestartTrack, decide, restarted
from shoal.agent.status import PAUSED, ContainerView, init_reason, pod_status, timestamp
from shoal.client import to_model
from shoal.model.pod import ANNOTATION_PAUSED, Container, ContainerState, Pod, PodPhase, Runtime
from shoal.model.qos import qos_class
from shoal.net.protocol import NetworkError, PodSandboxNetwork, SandboxNetwork
from shoal.runtime.protocol import ContainerInfo, ContainerNotFound, Driver, DriverError, Mount, NamespaceJoin

__all__ = ["PodContext", "PodWorker"]
WASM_POLL = dt.timedelta(seconds=1)  # how soon a wasm module's exit is noticed

log = logging.getLogger("shoal.agent.pods")
_ERROR_RETRY_MAX = 30.0
_EXIT_SETTLE = 40  # inspects, 25 ms apart, for conmon to record an exit code
EVICTED = "Evicted"
_EVICTED_MARKER = "evicted"  # in the pod dir: the eviction message, so a restarted agent keeps it evicted
_CONFIG_ERROR = "CreateContainerConfigError"
_PAUSED_NOTE = (PAUSED, f'frozen: the pod has annotation {ANNOTATION_PAUSED}="true"')


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
    network: SandboxNetwork | None = None  # None: pods get a private network namespace with loopback only
    network_ready: Callable[[], bool] = lambda: True  # False until the node's CNI conflist exists
    sandboxes: dict[str, PodSandboxNetwork] = field(default_factory=dict)  # recovered after a restart
    dns_mount: Callable[[Path, str], Mount] | None = None  # the pod's /etc/resolv.conf (cluster DNS), if served
    configs: ConfigSource | None = None  # ConfigMaps/Secrets for env and volumes (None: refused)


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
        self._probes = PodProbes(ctx.driver, self.poke)
        self._volume_problem = ""  # why the pod's configMap/secret volumes are not in place
        self._net: PodSandboxNetwork | None = ctx.sandboxes.pop(self.uid, None)
        self.evicted = asyncio.Event()  # set once an evicted pod's containers are stopped
        self.eviction: str | None = self._load_eviction()  # the eviction message, once evicted

    def _load_eviction(self) -> str | None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return (self.ctx.pods_dir / self.uid / _EVICTED_MARKER).read_text(encoding="utf-8")
        if self.status.get("phase") == PodPhase.FAILED.value and self.status.get("reason") == EVICTED:
            return str(self.status.get("message") or EVICTED)
        return None

    @property
    def paused(self) -> bool:
        annotations = (self.pod.get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(ANNOTATION_PAUSED, "")).lower() == "true"

    @property
    def key(self) -> str:
        meta = self.pod["metadata"]
        return f"{meta.get('namespace') or 'default'}/{meta['name']}"

    @property
    def owner(self) -> str:
        """Who pins this pod's images: its key and uid (a pod re-made with the same name is another)."""
        return f"{self.key} ({self.uid[:8]})"

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self._wake.set()

    def delete(self) -> None:
        self.deleted = True
        self._wake.set()

    def poke(self) -> None:
        self._wake.set()

    def evict(self, message: str) -> None:
        """Kill the pod's containers and keep it Failed/Evicted with ``message`` on this node."""
        if self.eviction is not None:
            return
        self.eviction = message
        marker = self.ctx.pods_dir / self.uid / _EVICTED_MARKER
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(message, encoding="utf-8")
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
                    wait_until: dt.datetime | None = None
                    pids: list[int] = []
                    if self.eviction is not None:
                        await self._stop_evicted()
                    else:
                        wait_until, pids = await self._sync()
                    if not any(self._waiting.values()):
                        self._error_delay = 0.0
                except Exception as exc:  # a pod's failure must not stop the agent
                    delay = self._bump_error()
                    if isinstance(exc, DriverError | NetworkError | OSError | ValueError):
                        log.warning("pod %s: %s; retrying in %gs", self.key, exc, delay)
                    else:
                        log.exception("pod %s: unexpected error; retrying in %gs", self.key, delay)
                    wait_until, pids = self.ctx.clock() + dt.timedelta(seconds=delay), []
                await self._sleep(wait_until, pids)
        finally:
            await self._probes.stop_all()
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
                async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancellation on 3.11
                    await self._wake.wait()
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
        paused = self.paused
        self._sync_config(pod)
        steps = InitSteps(self._inspect, self._create_init, self.ctx.driver, self._tracks, self._set_track,
                          self._waiting)
        init = await run_init(pod, self.uid, self.ctx.pods_dir / self.uid, steps, now, paused)
        if not init.done:
            if init.wake is None and any(v.info is None and v.waiting_reason for v in init.views):
                init.wake = now + dt.timedelta(seconds=self._bump_error())  # retry what held it back
            note = (init_reason(init.views), "waiting for the init containers to complete")
            views = [ContainerView(c.name, c.image, await self._inspect(container_id(self.uid, c.name)),
                                   self._tracks.get(c.name, RestartTrack()), *note, ready=False)
                     for c in pod.spec.containers]
            self._publish(pod, views, now, paused=paused, init=init)
            return init.wake, init.pids
        for index, c in enumerate(pod.spec.containers):
            cid = container_id(self.uid, c.name)
            info = await self._inspect(cid)
            track = self._tracks.get(c.name, RestartTrack())
            if paused:
                info = await self._freeze(cid, info)
                views.append(ContainerView(c.name, c.image, info, track, *_PAUSED_NOTE, ready=False))
                await self._sync_probes(c, cid, info)  # stops them: probes are suspended while frozen
                continue
            if info is not None and info.state is ContainerState.PAUSED:
                info = await self.ctx.driver.resume(cid)
            if info is None and not track.finished:
                info = await self._create_member(pod, index, sandbox_pid)
            elif info is not None and info.state is ContainerState.CREATED:
                info = await self.ctx.driver.start(cid)
            if info is not None and info.state is ContainerState.STOPPED and info.exit_code is None:
                info = await self._inspect(cid)  # it exited at once: let conmon record the code
            if info is not None and (kill := self._probes.kill_reason(c.name, info)):
                info = await self._kill_unhealthy(pod, c.name, cid, kill, track)
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
            track = self._tracks.get(c.name, RestartTrack())
            ready = await self._sync_probes(c, cid, info)
            if not reason:
                reason, message = self._probes.note(c.name, track)
            views.append(ContainerView(c.name, c.image, info, track, reason, message, ready))
        self._publish(pod, views, now, paused=paused, init=init)
        pids = [v.info.pid for v in views if v.info is not None and v.info.state is ContainerState.RUNNING
                and v.info.pid > 0]
        if pod.spec.runtime is Runtime.WASM and pids:  # the pid is the wasm host's, which outlives a module
            wake, pids = min(wake or now + WASM_POLL, now + WASM_POLL), []
        return wake, pids

    async def _freeze(self, cid: str, info: ContainerInfo | None) -> ContainerInfo | None:
        """Pause a running container; others stay as they are (nothing starts while paused)."""
        if info is not None and info.state is ContainerState.RUNNING:
            log.info("pod %s: pausing container %s", self.key, cid)
            return await self.ctx.driver.pause(cid)
        return info

    async def _stop_evicted(self) -> None:
        """Kill an evicted pod's containers (no grace: the node is short of memory or disk) and
        report it Failed/Evicted; it is not restarted here."""
        pod = to_model(self.pod)
        if not isinstance(pod, Pod):
            raise ValueError(f"expected a Pod, got {type(pod).__name__}")
        await self._probes.stop_all()
        views: list[ContainerView] = []
        driver = self.ctx.driver
        for c in pod.spec.init_containers:  # one may be running: it goes too, and nothing follows it
            info = await self._inspect(container_id(self.uid, c.name))
            if info is not None and info.state is ContainerState.RUNNING:
                await driver.stop(info.id, 0.0)
        for c in pod.spec.containers:
            cid = container_id(self.uid, c.name)
            info = await self._inspect(cid)
            if info is not None and info.state is ContainerState.PAUSED:
                info = await driver.resume(cid)
            if info is not None and info.state is ContainerState.RUNNING:
                await driver.stop(cid, 0.0)
                info = await self._inspect(cid)
            elif info is not None and info.state is ContainerState.CREATED:
                await driver.remove(cid)
                info = None
            track = replace(self._tracks.get(c.name, RestartTrack()), next_start=None, finished=True)
            views.append(ContainerView(c.name, c.image, info, track, EVICTED, self.eviction or ""))
        self._publish(pod, views, self.ctx.clock(), failure=(EVICTED, self.eviction or EVICTED))
        if not self.evicted.is_set():
            log.warning("pod %s: evicted: %s", self.key, self.eviction)
            self.evicted.set()

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
        return await self._create_member(pod, index, sandbox_pid)

    async def _create_member(self, pod: Pod, index: int, sandbox_pid: int) -> ContainerInfo | None:
        if index == 0:
            return await self._create_sandbox(pod)
        return await self._create(pod, index, sandbox_pid)

    async def _create_sandbox(self, pod: Pod) -> ContainerInfo | None:
        """Create and start the pod sandbox: the pod's first container, whose network, IPC and UTS
        namespaces every other container of the pod joins (``sandbox_joins``). This is the one place
        a pod sandbox comes to life, so pod networking attaches here: the pod's network namespace
        is made and wired first (CNI), then every container joins it by path."""
        if pod.spec.host_network or self.ctx.network is None:
            return await self._create(pod, 0, 0)
        first = pod.spec.containers[0].name
        if not self.ctx.network_ready():
            self._waiting[first] = ("NetworkNotReady", "waiting for the server to assign this node's spec.podCIDR "
                                                       "(the CNI conflist is written then)")
            return None
        try:
            bandwidth = pod_bandwidth(self.pod)
        except ValueError as exc:
            self._waiting[first] = ("CreateContainerConfigError", str(exc))
            return None
        try:
            self._net = await self.ctx.network.setup(self.uid, pod.metadata.name, pod.metadata.namespace or "default",
                                                     port_mappings(pod), bandwidth)
        except NetworkError as exc:
            self._waiting[first] = ("NetworkNotReady", str(exc))
            return None
        return await self._create(pod, 0, 0)

    async def _network_join(self, pod: Pod) -> NamespaceJoin | None:
        """The network namespace every container of the pod joins (None: the first makes its own)."""
        if pod.spec.runtime is Runtime.WASM:
            return None  # WASI preview 1 has no sockets: no sandbox to wire
        if pod.spec.host_network:
            return NamespaceJoin("network", f"/proc/{os.getpid()}/ns/net")
        if self.ctx.network is None:
            return None
        if self._net is None:  # adopted pod whose sandbox was not recovered: setup is idempotent
            self._net = await self.ctx.network.setup(self.uid, pod.metadata.name, pod.metadata.namespace or "default",
                                                     port_mappings(pod), pod_bandwidth(self.pod))
        return NamespaceJoin("network", self._net.netns_path)

    async def _create(self, pod: Pod, index: int, sandbox_pid: int, init: bool = False) -> ContainerInfo | None:
        """Create and start container ``index`` (init container ``index`` with ``init``); None (with a
        waiting reason) when it cannot yet."""
        from shoal.image.errors import ImageError

        c = (pod.spec.init_containers if init else pod.spec.containers)[index]
        if self._volume_problem:
            self._waiting[c.name] = (_CONFIG_ERROR, self._volume_problem)
            return None
        if not init and index > 0 and not sandbox_pid:
            self._waiting[c.name] = ("SandboxNotReady", "waiting for the pod's first container to run")
            return None
        if self.ctx.images is None:
            self._waiting[c.name] = ("ErrImagePull", "this agent has no image store")
            return None
        began = time.perf_counter()
        try:
            image = await self.ctx.images.prepare(c.image, c.image_pull_policy, pod=self.key, owner=self.owner)
        except ImageError as exc:
            self._waiting[c.name] = ("ErrImagePull", str(exc))
            return None
        pod_dir = self.ctx.pods_dir / self.uid
        net_join = await self._network_join(pod)
        try:
            check_supported(pod)
            volumes = {name: str(pod_dir / "volumes" / name) for name in volume_names(pod)}
            log_dir = pod_dir / "logs" / c.name
            restarts = self._tracks.get(c.name, RestartTrack()).restart_count
            spec = build_container_spec(pod, index, image.defaults, lower_dirs=image.lower_dirs,
                                        joins=pod_joins(sandbox_pid if index > 0 and not init else 0, net_join),
                                        log_path=str(log_dir / f"{restarts}.log"), volume_dirs=volumes,
                                        config=self.ctx.configs.lookup if self.ctx.configs else None, init=init)
            if self.ctx.dns_mount is not None and net_join is not None and not pod.spec.host_network and not any(
                    m.mount_path == "/etc/resolv.conf" for m in c.volume_mounts):
                spec = replace(spec, mounts=(*spec.mounts, self.ctx.dns_mount(
                    pod_dir, pod.metadata.namespace or "default")))
        except (DriverError, OSError, ValueError, ConfigMissing) as exc:
            self._waiting[c.name] = (_CONFIG_ERROR, str(exc))
            return None
        for directory in (*volumes.values(), str(log_dir)):
            Path(directory).mkdir(parents=True, exist_ok=True)
        if not self.ctx.cache.start_time(self.uid):
            self.ctx.cache.set_start_time(self.uid, timestamp(self.ctx.clock()))
        prepared = time.perf_counter()
        await self.ctx.driver.create(spec)
        created = time.perf_counter()
        self._waiting.pop(c.name, None)
        info = await self.ctx.driver.start(spec.id)
        log.debug("pod %s container %s: image+spec %.1f ms, create %.1f ms, start %.1f ms", self.key, c.name,
                  (prepared - began) * 1000, (created - prepared) * 1000, (time.perf_counter() - created) * 1000)
        return info

    # ----- probes, config, init containers -------------------------------------------------------

    async def _sync_probes(self, c: Container, cid: str, info: ContainerInfo | None) -> bool:
        return await self._probes.sync(c, cid, info, str(self.status.get("podIP") or "127.0.0.1"), self.status)

    async def _kill_unhealthy(self, pod: Pod, name: str, cid: str, reason: str,
                              track: RestartTrack) -> ContainerInfo | None:
        """Kill a container its startup or liveness probe gave up on; the restart policy does the rest."""
        message = f"Killing: {reason}; restartPolicy {pod.spec.restart_policy.value} decides what follows"
        log.warning("pod %s container %s: %s", self.key, name, message)
        await self._probes.note_kill(name, track, message)
        await self.ctx.driver.stop(cid, float(pod.spec.termination_grace_period_seconds))
        return await self._inspect(cid)

    def _sync_config(self, pod: Pod) -> None:
        """Follow the ConfigMaps/Secrets the pod uses and bring its configMap/secret volumes up to date."""
        if self.ctx.configs is not None:
            self.ctx.configs.watch_pod(self.uid, pod_refs(pod), self.poke)
        self._volume_problem = sync_volumes(pod, self.ctx.configs, self.ctx.pods_dir / self.uid)

    async def _create_init(self, pod: Pod, index: int) -> ContainerInfo | None:
        name = pod.spec.init_containers[index].name
        if self.ctx.network is not None and not pod.spec.host_network and not self.ctx.network_ready():
            self._waiting[name] = ("NetworkNotReady", "waiting for the server to assign this node's spec.podCIDR")
            return None
        return await self._create(pod, index, 0, init=True)

    def _publish(self, pod: Pod, views: list[ContainerView], now: dt.datetime, paused: bool = False,
                 failure: tuple[str, str] | None = None, init: InitProgress | None = None) -> None:
        init = init or InitProgress()
        status = pod_status(views, pod.spec.restart_policy, host_ip=self.ctx.host_ip,
                            start_time=self.ctx.cache.start_time(self.uid), previous=self.status, now=now,
                            paused=paused, failure=failure, init_views=init.views, initialized=init.done)
        status["qosClass"] = qos_class(pod.spec).value
        if pod.spec.host_network:
            status["podIP"] = self.ctx.host_ip
        elif self._net is not None:
            status["podIP"] = self._net.ip
        if status != self.status:
            self.status = status
            self.ctx.publish(self.uid)

    # ----- deletion ------------------------------------------------------------------------------

    async def _teardown(self) -> None:
        grace = float((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        mine = [info for info in await self.ctx.driver.recover() if info.pod_uid == self.uid]
        await asyncio.gather(*(self._stop_and_remove(info, grace) for info in mine))
        if self.ctx.network is not None:  # containers first: nothing may hold the address any more
            await self.ctx.network.teardown(self.uid)
            self._net = None
        shutil.rmtree(self.ctx.pods_dir / self.uid, ignore_errors=True)
        if self.ctx.configs is not None:
            self.ctx.configs.forget_pod(self.uid)
        self.ctx.cache.delete_pod(self.uid)
        if self.ctx.images is not None:
            await self.ctx.images.release(self.owner)
        log.info("pod %s: removed %d container(s)", self.key, len(mine))

    async def _stop_and_remove(self, info: ContainerInfo, grace: float) -> None:
        driver = self.ctx.driver
        if info.state in (ContainerState.RUNNING, ContainerState.PAUSED):
            if info.state is ContainerState.PAUSED:
                await driver.resume(info.id)
            await driver.stop(info.id, grace)
        with contextlib.suppress(ContainerNotFound):
            await driver.remove(info.id)
