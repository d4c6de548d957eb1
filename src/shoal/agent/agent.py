"""The node agent's main loop: register the Node, heartbeat, follow this node's pods, report status.

``Agent.run`` owns every background task under one TaskGroup: the heartbeat (every 2 s), the pod
follower (list + watch with ``fieldSelector=spec.nodeName=<node>``, writing desired pods to the
local cache before acting), the status reporter (latest status per pod, retried until the server
takes it), and one ``PodWorker`` per pod. Pods in the cache start at once, before the server is
reached, and containers that survived an agent restart are adopted (same PIDs). Node-pressure
eviction (``eviction.Evictor``) runs beside them, offline too, and so does the ConfigMap/Secret
follower (``configsource``: the objects the pods use, cached for offline restarts). The server being
unreachable is never fatal: every call retries with backoff. On stop it returns without touching
containers (they belong to conmon). It must not decide container lifecycle (``pods`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from shoal.agent.configsource import ConfigSource
from shoal.agent.edgestatus import EDGE_FACTS_SECONDS, EdgeStatusReporter
from shoal.agent.eviction import CHECK_SECONDS, Evictor, Threshold
from shoal.agent.netwatch import NodeNetwork
from shoal.agent.nodeinfo import metrics_annotations
from shoal.agent.pods import PodContext, PodWorker
from shoal.agent.tunnel import NodeTunnel
from shoal.client import ApiError, AsyncClient, ClientConfig, ClientError, ServerUnreachable

__all__ = ["Agent", "AgentOptions", "Backoff"]

log = logging.getLogger("shoal.agent")
HEARTBEAT_SECONDS = 2.0
ORPHAN_GRACE = 10.0


@dataclass(slots=True)
class Backoff:
    """Retry delays for server calls: 0.5 s doubling to ``cap``; ``reset`` after a success."""

    initial: float = 0.5
    cap: float = 15.0
    current: float = 0.0

    def next(self) -> float:
        self.current = min(max(self.current * 2, self.initial), self.cap)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


@dataclass(frozen=True, slots=True)
class AgentOptions:
    node_name: str
    client: ClientConfig
    node_manifest: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    zone_probes: dict[str, tuple[str, int]] = field(default_factory=dict)  # --zone-probe ZONE=HOST:PORT
    edge_facts_interval: float = EDGE_FACTS_SECONDS
    eviction_hard: tuple[Threshold, ...] = ()  # --eviction-hard; () turns eviction off
    eviction_interval: float = CHECK_SECONDS
    metrics_bind: str = ""  # --metrics-bind HOST:PORT; "" serves no /metrics
    metrics_push_interval: float = 10.0  # --metrics-push-interval; 0 pushes no usage samples
    cgroup_parent: str = "/shoal"


def _desired(pod: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What a worker acts on: spec, labels and annotations (shoal.io/paused); not status."""
    meta = pod.get("metadata") or {}
    return pod.get("spec"), meta.get("labels"), meta.get("annotations")


class Agent:
    def __init__(self, options: AgentOptions, ctx: PodContext, network: NodeNetwork | None = None) -> None:
        self.options = options
        self.ctx = ctx
        ctx.publish = self._mark_dirty
        if ctx.configs is None:
            ctx.configs = ConfigSource(ctx.cache)
        self.configs = ctx.configs
        self.network = network
        if network is not None:
            ctx.network = network.sandboxes
            ctx.network_ready = network.ready
            network.on_ready = self._network_ready
        self.workers: dict[str, PodWorker] = {}
        self._dirty: dict[str, None] = {}
        self._dirty_event = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.listed = asyncio.Event()  # set after the first successful pod list
        self.registered = asyncio.Event()  # set once the Node exists on the server
        self.edge = EdgeStatusReporter(options.node_name, options.zone_probes, options.node_manifest["metadata"]
                                       ["labels"], interval=options.edge_facts_interval)
        self.evictor = Evictor(options.eviction_hard, ctx.pods_dir.parent, ctx.driver, self.workers.values,
                               options.node_name, interval=options.eviction_interval)

    @property
    def name(self) -> str:
        return self.options.node_name

    # ----- workers -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        assert self._group is not None
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _desire(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        worker = self.workers.get(uid)
        if meta.get("deletionTimestamp"):
            if worker is not None:
                worker.delete()
            return
        self.ctx.cache.put_pod(pod)
        if worker is None or worker.deleted:
            log.debug("pod %s/%s: new on this node", meta.get("namespace") or "default", meta.get("name"))
            worker = PodWorker(self.ctx, pod)
            self.workers[uid] = worker
            self._spawn(self._run_worker(worker), f"pod {worker.key}")
        elif _desired(worker.pod) != _desired(pod):
            worker.update(pod)
        else:
            worker.pod = pod
        server_phase = (pod.get("status") or {}).get("phase")
        if worker.status.get("phase") and server_phase != worker.status.get("phase"):
            # the server wrote the status meanwhile (Unknown while this node was cut off): say it again
            self._mark_dirty(uid)

    def _forget(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.delete()

    async def _run_worker(self, worker: PodWorker) -> None:
        await worker.run()
        if self.workers.get(worker.uid) is worker and worker.deleted:
            del self.workers[worker.uid]
        self._dirty.pop(worker.uid, None)

    def _network_ready(self) -> None:
        log.info("node %s: pod network ready", self.name)
        for worker in self.workers.values():
            worker.poke()

    def _mark_dirty(self, uid: str) -> None:
        self._dirty[uid] = None
        self._dirty_event.set()

    # ----- server side ---------------------------------------------------------------------------

    async def _register(self, client: AsyncClient) -> None:
        advertised = metrics_annotations(self.options.metrics_bind, self.options.node_manifest)
        manifest = self.options.node_manifest
        if any(advertised.values()):
            meta = manifest["metadata"]
            manifest = {**manifest, "metadata": {**meta, "annotations": {**meta.get("annotations", {}), **advertised}}}
        try:
            await client.create(manifest)
            log.info("registered node %s", self.name)
            return
        except ApiError as exc:
            if exc.status_code != 409:
                raise
        current = await client.get("Node", None, self.name)
        labels = {**(current.get("metadata") or {}).get("labels", {}), **manifest["metadata"]["labels"]}
        await client.merge_patch("Node", None, self.name, {"metadata": {"labels": labels, "annotations": advertised}})
        status = {**(current.get("status") or {}), **manifest["status"]}
        await client.put_status({**manifest, "status": status})

    async def _heartbeat(self, client: AsyncClient, stop: asyncio.Event) -> None:
        backoff = Backoff()
        registered = False
        while not stop.is_set():
            try:
                if not registered:
                    await self._register(client)
                    registered = True
                    self.registered.set()
                await client.heartbeat(self.name)
                backoff.reset()
                delay = HEARTBEAT_SECONDS
            except ApiError as exc:
                registered = registered and exc.status_code != 404
                delay = backoff.next()
                log.warning("heartbeat: %s (retrying in %gs)", exc, delay)
            except ClientError as exc:
                delay = backoff.next()
                log.info("heartbeat: %s (retrying in %gs)", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _follow_pods(self, client: AsyncClient, stop: asyncio.Event) -> None:
        selector = f"spec.nodeName={self.name}"
        backoff = Backoff()
        while not stop.is_set():
            try:
                items, revision = await client.list("pods", None, field_selector=selector)
                seen = {p["metadata"]["uid"] for p in items if (p.get("metadata") or {}).get("uid")}
                for pod in items:
                    self._desire(pod)
                for uid in list(self.workers):
                    if uid not in seen:
                        self._forget(uid)
                        continue
                    self._mark_dirty(uid)  # the server may have marked it Unknown while we were away
                if not self.listed.is_set():
                    self.listed.set()
                    self._spawn(self._remove_orphans(), "orphans")
                backoff.reset()
                async for kind, obj in client.watch("pods", None, revision, field_selector=selector):
                    if kind in ("ADDED", "MODIFIED"):
                        self._desire(obj)
                    elif kind == "DELETED":
                        gone = str((obj.get("metadata") or {}).get("uid") or "")
                        if gone:
                            self._forget(gone)
                    if stop.is_set():
                        return
            except ClientError as exc:
                delay = backoff.next()
                level = logging.INFO if isinstance(exc, ServerUnreachable) else logging.WARNING
                log.log(level, "pod watch: %s (re-listing in %gs)", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _report(self, client: AsyncClient, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            await self._dirty_event.wait()
            self._dirty_event.clear()
            while self._dirty and not stop.is_set():
                uid = next(iter(self._dirty))
                del self._dirty[uid]
                worker = self.workers.get(uid)
                if worker is None:
                    continue
                try:
                    await self._put_status(client, worker)
                    backoff.reset()
                except ApiError as exc:
                    if exc.status_code == 404:
                        continue
                    self._dirty.setdefault(uid, None)
                    await asyncio.sleep(backoff.next())
                except ClientError as exc:
                    self._dirty.setdefault(uid, None)
                    delay = backoff.next()
                    log.info("status report: %s (retrying in %gs)", exc, delay)
                    await asyncio.sleep(delay)

    async def _put_status(self, client: AsyncClient, worker: PodWorker) -> None:
        meta = {k: v for k, v in (worker.pod.get("metadata") or {}).items() if k != "resourceVersion"}
        body = {**worker.pod, "metadata": meta, "status": worker.status}
        began = time.perf_counter()
        await client.put_status(body)
        log.debug("pod %s: status %s written in %.1f ms", worker.key, worker.status.get("phase"),
                  (time.perf_counter() - began) * 1000)

    async def _edge_facts(self, client: AsyncClient, stop: asyncio.Event) -> None:
        await self.registered.wait()
        await self.edge.run(client, stop)

    async def _remove_orphans(self) -> None:
        """Containers of pods this node no longer has (deleted while the agent was down)."""
        known = set(self.workers)
        orphans = {info.pod_uid for info in await self.ctx.driver.recover() if info.pod_uid not in known}
        for uid in orphans:
            log.info("removing containers of pod %s, which this node no longer runs", uid)
            worker = PodWorker(self.ctx, {"metadata": {"uid": uid, "name": uid},
                                          "spec": {"terminationGracePeriodSeconds": ORPHAN_GRACE}})
            worker.deleted = True
            await worker.run()
        if self.ctx.images is not None:  # pods deleted while the agent was down no longer pin images
            await self.ctx.images.retain({w.owner for w in self.workers.values()})

    async def _metrics(self, client: AsyncClient, stop: asyncio.Event) -> None:
        """Serve /metrics (when --metrics-bind is set) and push usage samples for `shoal top` until stop."""
        from shoal.agent.metrics import NodeMetrics, serve_metrics

        metrics = NodeMetrics(self.name, lambda: [{**w.pod, "status": w.status} for w in list(self.workers.values())],
                              self.options.cgroup_parent, self.ctx.pods_dir.parent,
                              interval=self.options.metrics_push_interval)
        try:
            endpoint = serve_metrics(self.options.metrics_bind, metrics)
        except OSError as exc:
            log.error("--metrics-bind %s: %s; serving no /metrics", self.options.metrics_bind, exc)
            endpoint = None
        try:
            await metrics.push_loop(client, stop)
            await stop.wait()
        finally:
            if endpoint is not None:
                endpoint.close()

    # ----- lifecycle -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
        async with AsyncClient(self.options.client) as client:
            try:
                async with asyncio.TaskGroup() as group:
                    self._group = group
                    cached = self.ctx.cache.pods()
                    if self.network is not None:  # before any worker: stale sandboxes go, live ones stay
                        uids = [str(p["metadata"]["uid"]) for p in cached if (p.get("metadata") or {}).get("uid")]
                        self.ctx.sandboxes.update(await self.network.recover(uids))
                        for name, loop in self.network.tasks(client, stop):
                            self._spawn(loop, name)
                    for pod in cached:  # offline autonomy: act on the cache at once
                        self._desire(pod)
                    self._spawn(self._heartbeat(client, stop), "heartbeat")
                    self._spawn(self._follow_pods(client, stop), "pods")
                    self._spawn(self._report(client, stop), "status")
                    self._spawn(self.configs.run(client, stop), "configs")
                    self._spawn(self._edge_facts(client, stop), "edge facts")
                    self._spawn(self.evictor.run(client, self.registered, stop), "eviction")
                    self._spawn(NodeTunnel(self.name, self.options.client, self.ctx.driver, self.ctx.pods_dir,
                                           images=self.ctx.images.store if self.ctx.images else None).run(stop),
                                "tunnel")
                    self._spawn(self._metrics(client, stop), "metrics")
                    if on_ready is not None:
                        on_ready()
                    await stop.wait()
                    for task in list(self._tasks):
                        task.cancel()
            finally:
                self._group = None
