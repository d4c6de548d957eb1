"""The committer: turns one round's Bindings for a node into store writes, so that two schedulers
running at once can never overcommit that node.

Per node and round: read the node's ``NodeAllocation`` ledger (the last one this committer wrote
is tried first; it is created when absent), drop entries that no longer hold and admit the new
pods that still fit beside the rest (ledger.py), then write the ledger with compare-and-swap on
its own resourceVersion — never the Node's, which heartbeats keep changing. On a conflict it
re-reads and re-checks, a bounded number of times. Only after the ledger write succeeds are the
admitted pods bound (compare-and-swap on each pod). Pods that did not fit the fresh ledger, or
whose binding failed, are reported back as lost for the loop to try again; the ledger entry of a
failed binding is dropped lazily by a later round. Must not choose nodes or touch the loop's queues.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from shoal.model import Condition, Node, ObjectMeta, Pod, PodPhase, set_condition
from shoal.model.allocation import NodeAllocation, NodeAllocationSpec, PodAllocation
from shoal.model.pod import ANNOTATION_SCHEDULING_SCORES
from shoal.scheduler import Binding
from shoal.scheduler.snapshot import node_info
from shoal.server.ledger import Admission, RequestsMemo, admit, allocation_of, prune
from shoal.store.protocol import AlreadyExists, Conflict, NotFound, Store

log = logging.getLogger("shoal.scheduler")
LEDGER_KIND = "NodeAllocation"
MAX_LEDGER_ATTEMPTS = 5
SCORES_ANNOTATION = ANNOTATION_SCHEDULING_SCORES
PodKey = tuple[str, str]
_encode = msgspec.json.Encoder().encode


def rfc3339(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_pending(pod: Pod) -> bool:
    return not pod.spec.node_name and not pod.metadata.deletion_timestamp and pod.status.phase == PodPhase.PENDING


class PodCache(Protocol):
    """What the committer reads from the scheduling loop's watch-fed cache."""

    @property
    def seen_revision(self) -> int:
        """The store revision through which every pod event has been applied to the cache."""
        ...

    def pod(self, key: PodKey) -> Pod | None: ...

    def bound_to(self, node: str) -> Iterable[Pod]: ...


@dataclass
class NodeCommit:
    """What became of one node's bindings: pods now bound (as stored), and pods to try again."""

    bound: list[Pod] = field(default_factory=list)
    lost: list[PodKey] = field(default_factory=list)


class Committer:
    def __init__(self, store: Store, cache: PodCache, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.cache = cache
        self.clock = clock
        self._ledgers: dict[str, NodeAllocation] = {}  # the last ledger written or read, per node
        self._requests = RequestsMemo()
        self._capacity: dict[str, tuple[str, Mapping[str, int]]] = {}  # node -> (its version, allocatable)

    def forget_node(self, name: str) -> None:
        """Drop what is remembered about a node that was deleted."""
        self._ledgers.pop(name, None)
        self._capacity.pop(name, None)

    def _allocatable(self, node: Node) -> Mapping[str, int]:
        """The node's allocatable amounts as the scheduler reads them, parsed once per node version."""
        name, version = node.metadata.name, node.metadata.resource_version
        known = self._capacity.get(name)
        if known is None or known[0] != version or not version:
            known = self._capacity[name] = (version, node_info(node).allocatable)
        return known[1]

    async def commit_node(self, node: Node | None, name: str, bindings: Sequence[Binding]) -> NodeCommit:
        """Reserve room for ``bindings`` in node ``name``'s ledger, then bind the pods that got it."""
        pods = [(binding, pod) for binding in bindings
                if (pod := self.cache.pod(binding.pod_key)) is not None and is_pending(pod)]
        if node is None:  # the node went away since the round's snapshot
            return NodeCommit(lost=[binding.pod_key for binding, _ in pods])
        candidates = [allocation_of(pod, self._requests) for _, pod in pods]
        admission = await self._reserve(name, self._allocatable(node), candidates)
        if admission is None:
            log.info("node %s: its allocation ledger kept changing; %d pod(s) wait for the next round",
                     name, len(pods))
            return NodeCommit(lost=[binding.pod_key for binding, _ in pods])
        admitted = {entry.uid for entry in admission.admitted}
        result = NodeCommit(lost=[binding.pod_key for binding, pod in pods if pod.metadata.uid not in admitted])
        if result.lost:
            log.debug("node %s is fuller than this scheduler saw; %d pod(s) wait for the next round",
                      name, len(result.lost))
        chosen = [(binding, pod) for binding, pod in pods if pod.metadata.uid in admitted]
        outcomes = await asyncio.gather(*(self._bind(binding, pod) for binding, pod in chosen))
        for (binding, _), stored in zip(chosen, outcomes, strict=True):
            if stored is None:
                result.lost.append(binding.pod_key)
            else:
                result.bound.append(stored)
        return result

    async def _reserve(self, name: str, allocatable: Mapping[str, int],
                       candidates: list[PodAllocation]) -> Admission | None:
        """Admit ``candidates`` into the ledger with compare-and-swap; None after too many conflicts."""
        ledger = self._ledgers.get(name)
        fresh = False
        for _ in range(MAX_LEDGER_ATTEMPTS):
            if ledger is None and not fresh:
                ledger = await self._read(name)
                fresh = True
            entries = prune(ledger.spec.pods if ledger else (), self.cache.pod, name, self.cache.seen_revision,
                            self.cache.bound_to(name))
            admission = admit(entries, candidates, allocatable)
            if admission.rejected and not fresh:
                ledger = None  # turned away on the copy written last: decide on the stored ledger
                continue
            if not admission.admitted:
                return admission
            try:
                if ledger is None:
                    stored = await self.store.create(NodeAllocation(
                        metadata=ObjectMeta(name=name), spec=NodeAllocationSpec(pods=admission.entries)))
                else:
                    stored = await self.store.update(msgspec.structs.replace(
                        ledger, spec=NodeAllocationSpec(pods=admission.entries)))
            except (Conflict, AlreadyExists, NotFound):
                self._ledgers.pop(name, None)
                ledger, fresh = None, False  # someone else wrote it: read it again and re-check
                continue
            assert isinstance(stored, NodeAllocation)
            self._ledgers[name] = stored
            return admission
        return None

    async def _read(self, name: str) -> NodeAllocation | None:
        try:
            stored = await self.store.get(LEDGER_KIND, "", name)
        except NotFound:
            return None
        assert isinstance(stored, NodeAllocation)
        return stored

    async def _bind(self, binding: Binding, pod: Pod) -> Pod | None:
        """Bind with compare-and-swap on the pod; None when it changed or went away meanwhile."""
        now = rfc3339(self.clock())
        scores = {k: round(v, 2) for k, v in binding.scores.items()}
        annotations = {**pod.metadata.annotations, SCORES_ANNOTATION: _encode(scores).decode()}
        status = msgspec.structs.replace(pod.status, conditions=set_condition(pod.status.conditions, Condition(
            type="PodScheduled", status="True", last_transition_time=now)))
        updated = msgspec.structs.replace(
            pod, metadata=msgspec.structs.replace(pod.metadata, annotations=annotations),
            spec=msgspec.structs.replace(pod.spec, node_name=binding.node), status=status)
        try:
            stored = await self.store.update(updated)
        except (Conflict, NotFound):
            return None
        assert isinstance(stored, Pod)
        return stored
