"""The scheduling loop: keeps a cache of nodes and pods from store watches, hands every
pending pod to the pure scheduler in rounds, and commits its decisions.

Bindings go through the committer (committer.py), one ledger write per node per round, nodes
in parallel: it re-checks each node's committed allocations with compare-and-swap on the node's
ledger and binds with compare-and-swap on the pod, so a pod is never bound twice and two loops
never overcommit a node. A pod whose binding lost such a race is tried again after a short,
growing delay. Unschedulable pods wait for the fleet to change (a node or a bound pod changes)
instead of being retried in a busy loop. Must not place pods itself: that is ``schedule``'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import msgspec

from shoal.model import Condition, Event, Node, ObjectMeta, ObjectReference, Pod, PodPhase, set_condition
from shoal.scheduler import Binding, ClusterSnapshot, Preemption, Unschedulable, schedule
from shoal.server.committer import SCORES_ANNOTATION, Committer, NodeCommit, PodKey, rfc3339
from shoal.server.committer import is_pending as _is_pending
from shoal.store.protocol import Conflict, EventType, Gone, NotFound, Store, StoreError

__all__ = ["SCORES_ANNOTATION", "SchedulerLoop", "record_event"]

log = logging.getLogger("shoal.scheduler")
ROUND_SIZE = 2000
COMMIT_CONCURRENCY = 256
RETRY_DELAY_S = 0.02  # first retry of a pod that lost a binding race; doubles per loss in a row
RETRY_DELAY_MAX_S = 1.0


def _is_bound_active(pod: Pod) -> bool:
    return bool(pod.spec.node_name) and pod.status.phase not in (PodPhase.SUCCEEDED, PodPhase.FAILED)


class SchedulerLoop:
    def __init__(self, store: Store, clock: Callable[[], dt.datetime], policy: str = "BestFit") -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.nodes: dict[str, Node] = {}
        self.pods: dict[PodKey, Pod] = {}
        self.pending: dict[PodKey, None] = {}  # insertion-ordered set of pods to try
        self.parked: dict[PodKey, None] = {}  # unschedulable: retried when the fleet changes
        self.retry: dict[PodKey, float] = {}  # lost a binding race: tried again at this loop time
        self._losses: dict[PodKey, int] = {}  # binding races lost in a row, per pod
        self._bound_to: dict[str, dict[PodKey, None]] = {}  # node name -> pods bound there
        self._seen_revision = 0
        self._wake = asyncio.Event()
        self._messages: dict[PodKey, str] = {}
        self.committer = Committer(store, self, clock)
        # The fleet as the scheduler sees it, kept between rounds: this loop's own bindings are
        # added to it (``with_pods``); anything else that changes capacity (a node event, a bound
        # pod that goes away or finishes, a pod bound by someone else) drops it for a rebuild.
        self._snapshot: ClusterSnapshot | None = None
        self._in_flight: set[PodKey] = set()
        self._bound_this_round: list[Pod] = []
        # Told after each round: (decisions, seconds in ``schedule``, seconds of the round); for /metrics.
        self.on_round: Callable[[Sequence[object], float, float], None] | None = None

    # -- the committer's view of the cache (PodCache) ----------------------------------------
    @property
    def seen_revision(self) -> int:
        return self._seen_revision

    def pod(self, key: PodKey) -> Pod | None:
        return self.pods.get(key)

    def bound_to(self, node: str) -> Iterator[Pod]:
        for key in self._bound_to.get(node, ()):
            pod = self.pods.get(key)
            if pod is not None:
                yield pod

    # -- cache ----------------------------------------------------------------------------
    def _on_node(self, kind: EventType, node: Node) -> None:
        if kind == EventType.DELETED:
            self.nodes.pop(node.metadata.name, None)
            self.committer.forget_node(node.metadata.name)
        else:
            self.nodes[node.metadata.name] = node
        self._snapshot = None
        self._unpark()

    def _remember(self, key: PodKey, pod: Pod | None) -> Pod | None:
        """Put ``pod`` (None: forget the key) in the cache and the per-node index; the old one."""
        old = self.pods.pop(key, None) if pod is None else self.pods.get(key)
        if old is not None and old.spec.node_name and (pod is None or pod.spec.node_name != old.spec.node_name):
            on_node = self._bound_to.get(old.spec.node_name)
            if on_node is not None:
                on_node.pop(key, None)
                if not on_node:
                    del self._bound_to[old.spec.node_name]
        if pod is not None:
            self.pods[key] = pod
            if pod.spec.node_name:
                self._bound_to.setdefault(pod.spec.node_name, {})[key] = None
        return old

    def _on_pod(self, kind: EventType, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        if kind == EventType.DELETED:
            old = self._remember(key, None)
            self.pending.pop(key, None)
            self.parked.pop(key, None)
            self.retry.pop(key, None)
            self._losses.pop(key, None)
            self._messages.pop(key, None)
            if old is not None and old.spec.node_name:
                self._snapshot = None
                self._unpark()
            return
        old = self._remember(key, pod)
        if pod.spec.node_name and (old is None or not old.spec.node_name) and key not in self._in_flight:
            self._snapshot = None  # bound by someone else
        if _is_pending(pod):
            if key not in self.parked:
                self.pending[key] = None
                self._wake.set()
        else:
            self.pending.pop(key, None)
            self.parked.pop(key, None)
            if old is not None and old.spec.node_name and not _is_bound_active(pod):
                self._snapshot = None
                self._unpark()  # a finished pod frees its node's resources

    def _unpark(self) -> None:
        if self.parked:
            for key in self.parked:
                self.pending[key] = None
            self.parked.clear()
            self._wake.set()

    async def _follow(self, kind: str, stop: asyncio.Event) -> None:
        handler: Callable[[EventType, object], None] = self._on_node if kind == "Node" else self._on_pod  # type: ignore[assignment]
        while not stop.is_set():
            listed = await self.store.list(kind)
            if kind == "Node":
                self.nodes.clear()
            else:
                self.pods.clear()
                self._bound_to.clear()
                self.pending.clear()
                self.parked.clear()
            for obj in listed.items:
                handler(EventType.ADDED, obj)
            if kind == "Pod":
                self._seen_revision = listed.revision
            try:
                async for event in self.store.watch(kind, None, listed.revision):
                    handler(event.type, event.object)
                    if kind == "Pod":
                        self._seen_revision = event.revision
            except Gone:
                log.info("scheduler watch on %s expired; re-listing", kind)

    # -- rounds ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            watchers = [group.create_task(self._follow(kind, stop)) for kind in ("Node", "Pod")]
            stopper = group.create_task(stop.wait())
            while not stop.is_set():
                waiter = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([waiter, stopper], timeout=self._next_retry_in(),
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if stop.is_set():
                    break
                self._wake.clear()
                self._release_retries()
                await asyncio.sleep(0)  # let a burst of creates land in one round
                while self.pending and not stop.is_set():
                    await self.round()
                    self._release_retries()
            for task in watchers:
                task.cancel()

    def _retry_later(self, key: PodKey) -> None:
        losses = self._losses[key] = self._losses.get(key, 0) + 1
        delay = min(RETRY_DELAY_S * 2 ** (losses - 1), RETRY_DELAY_MAX_S)
        self.retry[key] = asyncio.get_running_loop().time() + delay

    def _next_retry_in(self) -> float | None:
        if not self.retry:
            return None
        return max(0.0, min(self.retry.values()) - asyncio.get_running_loop().time())

    def _release_retries(self) -> None:
        now = asyncio.get_running_loop().time()
        for key, due in list(self.retry.items()):
            if due <= now:
                del self.retry[key]
                self.pending[key] = None

    async def round(self) -> None:
        keys = list(self.pending)[:ROUND_SIZE]
        for key in keys:
            self.pending.pop(key, None)
        pods = [self.pods[k] for k in keys if k in self.pods and _is_pending(self.pods[k])]
        if not pods:
            return
        started = time.perf_counter()
        snapshot = self._snapshot
        if snapshot is None:
            bound = [p for p in self.pods.values() if _is_bound_active(p)]
            snapshot = ClusterSnapshot.build(list(self.nodes.values()), bound)
        self._snapshot = snapshot
        decisions = schedule(snapshot, pods, self.policy, self.clock())
        scheduled = time.perf_counter()
        per_node: dict[str, list[Binding]] = {}
        semaphore = asyncio.Semaphore(COMMIT_CONCURRENCY)
        self._in_flight = {d.pod_key for d in decisions if isinstance(d, Binding)}
        self._bound_this_round = []
        try:
            await self._commit_round(decisions, per_node, semaphore)
        finally:
            self._in_flight = set()
        if self._snapshot is snapshot:  # nothing invalidated it meanwhile: add what was bound
            self._snapshot = snapshot.with_pods(self._bound_this_round)
        if self.on_round is not None:
            self.on_round(decisions, scheduled - started, time.perf_counter() - started)

    async def _commit_round(self, decisions: Sequence[Binding | Unschedulable | Preemption],
                            per_node: dict[str, list[Binding]], semaphore: asyncio.Semaphore) -> None:
        async with asyncio.TaskGroup() as group:
            for decision in decisions:
                if isinstance(decision, Binding):
                    per_node.setdefault(decision.node, []).append(decision)
                else:
                    group.create_task(self._commit(decision, semaphore))
            for node, bindings in per_node.items():
                group.create_task(self._commit_node(node, bindings, semaphore))

    async def _commit_node(self, node: str, bindings: Sequence[Binding], semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            try:
                result = await self.committer.commit_node(self.nodes.get(node), node, bindings)
            except StoreError:
                log.exception("could not commit %d binding(s) to node %s", len(bindings), node)
                result = NodeCommit(lost=[binding.pod_key for binding in bindings])
        self._bound_this_round.extend(result.bound)
        for pod in result.bound:
            key = (pod.metadata.namespace, pod.metadata.name)
            self._remember(key, pod)  # count it at once, before its watch event arrives
            self._messages.pop(key, None)
            self._losses.pop(key, None)
        for key in result.lost:
            self._retry_later(key)
        if result.lost:  # someone else committed where this loop thought there was room
            self._snapshot = None

    async def _commit(self, decision: Unschedulable | Preemption, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            try:
                if isinstance(decision, Unschedulable):
                    await self._unschedulable(decision)
                else:
                    await self._preempt(decision)
            except (Conflict, NotFound):
                pass  # the pod changed or went away; its watch event brings it back if still pending
            except StoreError:
                log.exception("could not commit a scheduling decision for %s", decision.pod_key)

    async def _unschedulable(self, decision: Unschedulable) -> None:
        key = decision.pod_key
        self.parked[key] = None
        self._losses.pop(key, None)
        pod = self.pods.get(key)
        if pod is None or self._messages.get(key) == decision.message:
            return
        self._messages[key] = decision.message
        now = rfc3339(self.clock())
        status = msgspec.structs.replace(pod.status, conditions=set_condition(pod.status.conditions, Condition(
            type="PodScheduled", status="False", reason="Unschedulable", message=decision.message,
            last_transition_time=now)))
        stored = await self.store.update(msgspec.structs.replace(pod, status=status))
        assert isinstance(stored, Pod)
        self._remember(key, stored)
        await record_event(self.store, stored, "FailedScheduling", decision.message, "Warning", "scheduler", now)

    async def _preempt(self, decision: Preemption) -> None:
        pod = self.pods.get(decision.pod_key)
        now = rfc3339(self.clock())
        for namespace, name in decision.victims:
            with contextlib.suppress(NotFound):
                victim = await self.store.delete("Pod", namespace, name)
                assert isinstance(victim, Pod)
                await record_event(self.store, victim, "Preempted", f"preempted by {decision.pod_key[1]} on "
                                   f"node {decision.node}", "Warning", "scheduler", now)
        if pod is not None:
            self.pending[decision.pod_key] = None


async def record_event(store: Store, obj: Pod | Node, reason: str, message: str, kind: str, source: str,
                       now: str) -> None:
    """Create an Event about ``obj``, or bump the count of the identical one."""
    meta = obj.metadata
    digest = hashlib.sha1(f"{reason}\0{message}".encode()).hexdigest()[:10]
    name = f"{meta.name}.{digest}"
    namespace = meta.namespace or "default"
    try:
        existing = await store.get("Event", namespace, name)
        assert isinstance(existing, Event)
        await store.update(msgspec.structs.replace(existing, count=existing.count + 1, last_timestamp=now))
    except NotFound:
        event = Event(metadata=ObjectMeta(name=name, namespace=namespace),
                      involved_object=ObjectReference(kind=type(obj).__name__, namespace=meta.namespace,
                                                      name=meta.name, uid=meta.uid),
                      reason=reason, message=message, type=kind, source=source,
                      first_timestamp=now, last_timestamp=now)
        with contextlib.suppress(StoreError):
            await store.create(event)

