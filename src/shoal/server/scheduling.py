"""The scheduling loop: keeps a cache of nodes and pods from store watches, hands every
pending pod to the pure scheduler in rounds, and commits its decisions.

The committer is the only writer of bindings: it binds with compare-and-swap on the pod (a pod
is never bound twice) and re-checks the node's committed allocations before each binding.
Unschedulable pods wait for the fleet to change (a node or a bound pod changes) instead of
being retried in a busy loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable

import msgspec

from shoal.model import Condition, Event, Node, ObjectMeta, ObjectReference, Pod, PodPhase, set_condition
from shoal.scheduler import Binding, ClusterSnapshot, Preemption, Unschedulable, schedule
from shoal.store.protocol import Conflict, EventType, Gone, NotFound, Store, StoreError

log = logging.getLogger("shoal.scheduler")
ROUND_SIZE = 2000
COMMIT_CONCURRENCY = 256
SCORES_ANNOTATION = "shoal.io/scheduling-scores"
_encode = msgspec.json.Encoder().encode
PodKey = tuple[str, str]


def _rfc3339(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_pending(pod: Pod) -> bool:
    return not pod.spec.node_name and not pod.metadata.deletion_timestamp and pod.status.phase == PodPhase.PENDING


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
        self._wake = asyncio.Event()
        self._messages: dict[PodKey, str] = {}

    # -- cache ----------------------------------------------------------------------------
    def _on_node(self, kind: EventType, node: Node) -> None:
        if kind == EventType.DELETED:
            self.nodes.pop(node.metadata.name, None)
        else:
            self.nodes[node.metadata.name] = node
        self._unpark()

    def _on_pod(self, kind: EventType, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        old = self.pods.get(key)
        if kind == EventType.DELETED:
            self.pods.pop(key, None)
            self.pending.pop(key, None)
            self.parked.pop(key, None)
            self._messages.pop(key, None)
            if old is not None and old.spec.node_name:
                self._unpark()
            return
        self.pods[key] = pod
        if _is_pending(pod):
            if key not in self.parked:
                self.pending[key] = None
                self._wake.set()
        else:
            self.pending.pop(key, None)
            self.parked.pop(key, None)
            if old is not None and old.spec.node_name and not _is_bound_active(pod):
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
                self.pending.clear()
                self.parked.clear()
            for obj in listed.items:
                handler(EventType.ADDED, obj)
            try:
                async for event in self.store.watch(kind, None, listed.revision):
                    handler(event.type, event.object)
            except Gone:
                log.info("scheduler watch on %s expired; re-listing", kind)

    # -- rounds ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            watchers = [group.create_task(self._follow(kind, stop)) for kind in ("Node", "Pod")]
            stopper = group.create_task(stop.wait())
            while not stop.is_set():
                waiter = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if stop.is_set():
                    break
                self._wake.clear()
                await asyncio.sleep(0)  # let a burst of creates land in one round
                while self.pending and not stop.is_set():
                    await self.round()
            for task in watchers:
                task.cancel()

    async def round(self) -> None:
        keys = list(self.pending)[:ROUND_SIZE]
        for key in keys:
            self.pending.pop(key, None)
        pods = [self.pods[k] for k in keys if k in self.pods and _is_pending(self.pods[k])]
        if not pods:
            return
        bound = [p for p in self.pods.values() if _is_bound_active(p)]
        snapshot = ClusterSnapshot.build(list(self.nodes.values()), bound)
        decisions = schedule(snapshot, pods, self.policy, self.clock())
        semaphore = asyncio.Semaphore(COMMIT_CONCURRENCY)
        async with asyncio.TaskGroup() as group:
            for decision in decisions:
                group.create_task(self._commit(decision, semaphore))

    async def _commit(self, decision: Binding | Unschedulable | Preemption, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            try:
                if isinstance(decision, Binding):
                    await self._bind(decision)
                elif isinstance(decision, Unschedulable):
                    await self._unschedulable(decision)
                else:
                    await self._preempt(decision)
            except (Conflict, NotFound):
                pass  # the pod changed or went away; its watch event brings it back if still pending
            except StoreError:
                log.exception("could not commit a scheduling decision for %s", decision.pod_key)

    async def _bind(self, binding: Binding) -> None:
        pod = self.pods.get(binding.pod_key)
        if pod is None or not _is_pending(pod):
            return
        now = _rfc3339(self.clock())
        scores = {k: round(v, 2) for k, v in binding.scores.items()}
        annotations = {**pod.metadata.annotations, SCORES_ANNOTATION: _encode(scores).decode()}
        status = msgspec.structs.replace(pod.status, conditions=set_condition(pod.status.conditions, Condition(
            type="PodScheduled", status="True", last_transition_time=now)))
        updated = msgspec.structs.replace(
            pod, metadata=msgspec.structs.replace(pod.metadata, annotations=annotations),
            spec=msgspec.structs.replace(pod.spec, node_name=binding.node), status=status)
        stored = await self.store.update(updated)
        assert isinstance(stored, Pod)
        self.pods[binding.pod_key] = stored  # count it at once, before its watch event arrives
        self._messages.pop(binding.pod_key, None)

    async def _unschedulable(self, decision: Unschedulable) -> None:
        key = decision.pod_key
        self.parked[key] = None
        pod = self.pods.get(key)
        if pod is None or self._messages.get(key) == decision.message:
            return
        self._messages[key] = decision.message
        now = _rfc3339(self.clock())
        status = msgspec.structs.replace(pod.status, conditions=set_condition(pod.status.conditions, Condition(
            type="PodScheduled", status="False", reason="Unschedulable", message=decision.message,
            last_transition_time=now)))
        stored = await self.store.update(msgspec.structs.replace(pod, status=status))
        assert isinstance(stored, Pod)
        self.pods[key] = stored
        await record_event(self.store, stored, "FailedScheduling", decision.message, "Warning", "scheduler", now)

    async def _preempt(self, decision: Preemption) -> None:
        pod = self.pods.get(decision.pod_key)
        now = _rfc3339(self.clock())
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

