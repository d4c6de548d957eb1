"""The committer and the scheduling loop on an in-memory store: the ledger is written before a
binding, a reservation the loop cannot see still blocks a node, and a pod that lost such a race
is retried (with a growing delay) instead of being parked or spun on."""

from __future__ import annotations

import asyncio
import datetime as dt

from shoal.model import Container, Node, NodePhase, NodeStatus, ObjectMeta, Pod, PodSpec, condition
from shoal.model.allocation import NodeAllocation, NodeAllocationSpec, PodAllocation
from shoal.model.pod import ResourceRequirements
from shoal.server.scheduling import SchedulerLoop
from shoal.store import FakeStore


def _now() -> dt.datetime:
    return dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _node(name: str = "edge-1", cpu: str = "1") -> Node:
    return Node(metadata=ObjectMeta(name=name), status=NodeStatus(phase=NodePhase.ONLINE,
                                                                  allocatable={"cpu": cpu, "pods": 110}))


def _pod(name: str, cpu: str = "600m") -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace="default"), spec=PodSpec(containers=[Container(
        name="app", image="app:1", resources=ResourceRequirements(requests={"cpu": cpu}))]))


async def _until(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.01)


async def _get_pod(store: FakeStore, name: str) -> Pod:
    pod = await store.get("Pod", "default", name)
    assert isinstance(pod, Pod)
    return pod


def test_binding_records_the_pod_in_the_node_ledger_first() -> None:
    async def scenario() -> None:
        store = FakeStore()
        await store.create(_node())
        stop = asyncio.Event()
        loop = SchedulerLoop(store, _now)
        async with asyncio.TaskGroup() as group:
            group.create_task(loop.run(stop))
            created = await store.create(_pod("web"))
            assert isinstance(created, Pod)
            await _until(lambda: _bound(store, "web"))
            stop.set()
        ledger = await store.get("NodeAllocation", "", "edge-1")
        assert isinstance(ledger, NodeAllocation)
        [entry] = ledger.spec.pods
        assert (entry.name, entry.uid, entry.requests) == ("web", created.metadata.uid, {"cpu": 600, "pods": 1})
        # the entry was written against the pending version, and the binding came after it
        assert int(entry.resource_version) == int(created.metadata.resource_version)
        assert int(ledger.metadata.resource_version) < int((await _get_pod(store, "web")).metadata.resource_version)

    asyncio.run(scenario())


async def _bound(store: FakeStore, name: str) -> bool:
    return bool((await _get_pod(store, name)).spec.node_name)


def test_a_reservation_the_loop_cannot_see_blocks_the_node_and_the_pod_is_retried_not_parked() -> None:
    async def scenario() -> None:
        store = FakeStore()
        await store.create(_node())
        # Another scheduler reserved 600m for a pod this loop has not seen yet (a later revision).
        ahead = str(store.revision + 1_000_000)
        other = PodAllocation(namespace="default", name="elsewhere", uid="u-1", resource_version=ahead,
                              requests={"cpu": 600, "pods": 1})
        await store.create(NodeAllocation(metadata=ObjectMeta(name="edge-1"), spec=NodeAllocationSpec(pods=[other])))
        stop = asyncio.Event()
        loop = SchedulerLoop(store, _now)
        async with asyncio.TaskGroup() as group:
            group.create_task(loop.run(stop))
            await store.create(_pod("web"))
            await _until(lambda: _retried(loop))
            await asyncio.sleep(0.3)
            pod = await _get_pod(store, "web")
            assert not pod.spec.node_name, "bound next to a reservation that leaves no room: overcommitted"
            assert condition(pod.status.conditions, "PodScheduled") is None, "a lost race is not Unschedulable"
            losses = loop._losses[("default", "web")]
            assert 2 <= losses <= 8, f"{losses} retries in 0.3 s: the delay should grow, not spin"
            # The other scheduler's binding failed; its entry is released, and the retry now binds.
            current = await store.get("NodeAllocation", "", "edge-1")
            await store.update(_with_pods(current, []))
            await _until(lambda: _bound(store, "web"), timeout=3)
            stop.set()

    asyncio.run(scenario())


async def _retried(loop: SchedulerLoop) -> bool:
    return ("default", "web") in loop._losses


def _with_pods(ledger: object, pods: list[PodAllocation]) -> NodeAllocation:
    assert isinstance(ledger, NodeAllocation)
    return NodeAllocation(metadata=ledger.metadata, spec=NodeAllocationSpec(pods=pods))


def test_stale_entries_are_dropped_when_the_node_is_next_written() -> None:
    async def scenario() -> None:
        store = FakeStore()
        await store.create(_node())
        stop = asyncio.Event()
        loop = SchedulerLoop(store, _now)
        async with asyncio.TaskGroup() as group:
            group.create_task(loop.run(stop))
            await store.create(_pod("first"))
            await _until(lambda: _bound(store, "first"))
            await store.delete("Pod", "default", "first")
            await store.create(_pod("second"))  # needs the room "first" held
            await _until(lambda: _bound(store, "second"))
            stop.set()
        ledger = await store.get("NodeAllocation", "", "edge-1")
        assert isinstance(ledger, NodeAllocation)
        assert [entry.name for entry in ledger.spec.pods] == ["second"]

    asyncio.run(scenario())
