"""Two scheduling loops at once against one SQLite store never overcommit a node.

Each loop reaches the store over a simulated link (``_Link``) that delays every request by a
random few milliseconds, as two scheduler replicas talking to a shared store would see; which
loop wins a pod is then a matter of timing. The loops run different policies (one packs, one
spreads), so for the same pending pods they pick different nodes: without the committer's
per-node ledger, pods bound by one land on nodes the other has filled. Small nodes (1 CPU) and
many 300m pods make every node contended.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path

from shoal.model import Container, Node, NodePhase, NodeStatus, Object, ObjectMeta, Pod, PodSpec, Selector, condition
from shoal.model.pod import ResourceRequirements
from shoal.scheduler.podview import pod_requests
from shoal.server.scheduling import SchedulerLoop
from shoal.store import SqliteStore
from shoal.store.protocol import ListResult, Store, WatchIterator

NODES = 5
PODS = 60
NODE_CPU_MILLIS = 1000
POD_CPU_MILLIS = 300
BURST = 20
FITTING = NODES * (NODE_CPU_MILLIS // POD_CPU_MILLIS)  # 15


class _Link:
    """A Store seen over a network link: every request waits 0..``max_delay`` seconds first."""

    def __init__(self, store: Store, seed: int, max_delay: float = 0.008) -> None:
        self._store = store
        self._rng = random.Random(seed)
        self._max_delay = max_delay

    async def _hop(self) -> None:
        await asyncio.sleep(self._rng.uniform(0, self._max_delay))

    @property
    def revision(self) -> int:
        return self._store.revision

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        await self._hop()
        return await self._store.get(kind, namespace, name)

    async def list(self, kind: str, namespace: str | None = None, selector: Selector | None = None) -> ListResult:
        await self._hop()
        return await self._store.list(kind, namespace, selector)

    async def create(self, obj: Object) -> Object:
        await self._hop()
        return await self._store.create(obj)

    async def update(self, obj: Object) -> Object:
        await self._hop()
        return await self._store.update(obj)

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Object:
        await self._hop()
        return await self._store.delete(kind, namespace, name, resource_version)

    def watch(self, kind: str | None, namespace: str | None = None, from_revision: int = 0,
              selector: Selector | None = None) -> WatchIterator:
        return self._store.watch(kind, namespace, from_revision, selector)

    async def close(self) -> None:
        await self._store.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pod(i: int) -> Pod:
    spec = PodSpec(containers=[Container(name="app", image="app:1", resources=ResourceRequirements(
        requests={"cpu": f"{POD_CPU_MILLIS}m", "memory": "16Mi"}))])
    return Pod(metadata=ObjectMeta(name=f"pod-{i:03d}", namespace="default"), spec=spec)


async def _pods(store: Store) -> list[Pod]:
    return [pod for pod in (await store.list("Pod")).items if isinstance(pod, Pod)]


def _settled(pods: list[Pod]) -> bool:
    """Every pod is bound or has been told why it is not."""
    for pod in pods:
        if pod.spec.node_name:
            continue
        scheduled = condition(pod.status.conditions, "PodScheduled")
        if scheduled is None or scheduled.reason != "Unschedulable":
            return False
    return True


async def _race(store: Store) -> list[Pod]:
    for i in range(NODES):
        await store.create(Node(metadata=ObjectMeta(name=f"edge-{i}"), status=NodeStatus(
            phase=NodePhase.ONLINE, allocatable={"cpu": f"{NODE_CPU_MILLIS}m", "memory": "1Gi", "pods": 110})))
    stop = asyncio.Event()
    loops = [SchedulerLoop(_Link(store, seed=1), _now, "BestFit"),
             SchedulerLoop(_Link(store, seed=2), _now, "WorstFit")]
    async with asyncio.TaskGroup() as group:
        for loop in loops:
            group.create_task(loop.run(stop))
        await asyncio.sleep(0.05)  # both loops have listed and are watching
        for start in range(0, PODS, BURST):  # concurrent bursts, so rounds interleave with creates
            await asyncio.gather(*(store.create(_pod(i)) for i in range(start, start + BURST)))
            await asyncio.sleep(0.005)
        try:
            async with asyncio.timeout(20):
                while not _settled(await _pods(store)):
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # let any binding still in flight land before judging
        finally:
            stop.set()
    return await _pods(store)


def test_two_schedulers_never_overcommit_a_node(tmp_path: Path) -> None:
    async def scenario() -> list[Pod]:
        store = await SqliteStore.open(tmp_path / "state.db")
        try:
            return await _race(store)
        finally:
            await store.close()

    pods = asyncio.run(scenario())
    used: dict[str, int] = {}
    for pod in pods:
        if pod.spec.node_name:
            used[pod.spec.node_name] = used.get(pod.spec.node_name, 0) + pod_requests(pod.spec)["cpu"]
    over = {node: millis for node, millis in used.items() if millis > NODE_CPU_MILLIS}
    assert not over, f"nodes overcommitted (CPU millis bound, allocatable {NODE_CPU_MILLIS}): {over}"
    bound = sum(1 for pod in pods if pod.spec.node_name)
    assert bound == FITTING, f"{bound} pods bound; {FITTING} fit (3 per node), the rest must stay pending"
    pending = [pod for pod in pods if not pod.spec.node_name]
    for pod in pending:
        scheduled = condition(pod.status.conditions, "PodScheduled")
        assert scheduled is not None and "Insufficient cpu" in scheduled.message, (pod.metadata.name, scheduled)
