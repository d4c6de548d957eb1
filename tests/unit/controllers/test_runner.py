"""The runner against an in-memory store: pods replaced, cascading deletes, resync, retries, nodes."""

from __future__ import annotations

import asyncio

import msgspec

from shoal.controllers import (
    Controller,
    DeploymentReconciler,
    EmitEvent,
    EventRecorder,
    GarbageCollector,
    LeaseTable,
    build_controllers,
    ref_of,
)
from shoal.model import Deployment, Event, Node, NodePhase, Pod, PodPhase
from shoal.model.workloads import LABEL_TEMPLATE_HASH
from shoal.store.protocol import Conflict, Unavailable

from .helpers import FakeClock, bare_pod, deployment, eventually, online_node, ready_status, run, running
from .memstore import MemStore


def pods(store: MemStore) -> list[Pod]:
    return [p for p in store.objects("Pod") if isinstance(p, Pod)]


def pod_names(store: MemStore) -> set[str]:
    return {p.metadata.name for p in pods(store)}


def setup(sweep: float = 0.05) -> tuple[MemStore, FakeClock, LeaseTable, list[Controller]]:
    clock = FakeClock()
    store = MemStore(clock)
    leases = LeaseTable(started_at=clock())
    # pod CIDR assignment has its own tests; here nodes must see only lifecycle writes
    return store, clock, leases, build_controllers(store, leases, clock, node_sweep=sweep, cluster_cidr=None)


def test_deployment_gets_its_pods_and_a_deleted_pod_is_replaced() -> None:
    async def main() -> None:
        store, _, _, controllers = setup()
        async with running(controllers):
            await store.create(deployment(replicas=3))
            await eventually(lambda: len(pods(store)) == 3, what="3 pods")
            before = pod_names(store)
            victim = sorted(before)[0]
            await store.delete("Pod", "default", victim)
            await eventually(lambda: len(pods(store)) == 3 and victim not in pod_names(store), what="replacement")
            assert len(pod_names(store) - before) == 1
            await eventually(lambda: isinstance(d := store.objects("Deployment")[0], Deployment)
                             and d.status.replicas == 3 and d.status.updated_replicas == 3, what="status")
            for pod in pods(store):
                assert pod.metadata.name.startswith("web-" + pod.metadata.labels[LABEL_TEMPLATE_HASH] + "-")
            reasons = sorted({e.reason for e in store.objects("Event") if isinstance(e, Event)})
            assert reasons == ["SuccessfulCreate"]
            assert len(store.objects("Event")) == 4

    run(main)


def test_deleting_a_deployment_removes_its_pods_but_not_others() -> None:
    async def main() -> None:
        store, _, _, controllers = setup()
        async with running(controllers):
            await store.create(bare_pod("standalone"))
            await store.create(deployment(replicas=2))
            await eventually(lambda: len(pods(store)) == 3, what="pods")
            await store.delete("Deployment", "default", "web")
            await eventually(lambda: pod_names(store) == {"standalone"}, what="cascading delete")
        assert store.watchers == 0  # the informer's watch is closed on stop

    run(main)


def test_pods_of_a_deleted_deployment_are_collected_after_restart() -> None:
    async def main() -> None:
        store, _, _, controllers = setup()
        async with running(controllers):
            await store.create(deployment(replicas=2))
            await eventually(lambda: len(pods(store)) == 2, what="pods")
        await store.delete("Deployment", "default", "web")  # while no controller runs
        assert len(pods(store)) == 2
        async with running(controllers):
            await eventually(lambda: not pods(store), what="orphans collected on start")

    run(main)


def test_scale_and_template_change_roll_pods() -> None:
    async def main() -> None:
        store, _, _, controllers = setup()
        async with running(controllers):
            created = await store.create(deployment(replicas=2))
            await eventually(lambda: len(pods(store)) == 2, what="pods")
            assert isinstance(created, Deployment)
            current = store.objects("Deployment")[0]
            assert isinstance(current, Deployment)
            template = current.spec.template
            new_template = msgspec.structs.replace(template, spec=msgspec.structs.replace(
                template.spec, containers=[msgspec.structs.replace(template.spec.containers[0], image="web:2")]))
            await store.update(msgspec.structs.replace(current, metadata=msgspec.structs.replace(
                current.metadata, resource_version=""), spec=msgspec.structs.replace(
                current.spec, replicas=4, template=new_template)))
            old_hash = pods(store)[0].metadata.labels[LABEL_TEMPLATE_HASH]
            # the old pods never became ready, so nothing is lost by replacing them at once
            await eventually(lambda: len(pods(store)) == 4 and all(
                p.metadata.labels[LABEL_TEMPLATE_HASH] != old_hash for p in pods(store)), what="rollout")

    run(main)


def test_watch_expiry_relists_and_keeps_reconciling() -> None:
    async def main() -> None:
        store, _, _, controllers = setup()
        async with running(controllers):
            await store.create(deployment(replicas=2))
            await eventually(lambda: len(pods(store)) == 2, what="pods")
            store.expire_watches()
            victim = sorted(pod_names(store))[0]
            await store.delete("Pod", "default", victim)
            await eventually(lambda: len(pods(store)) == 2 and victim not in pod_names(store), what="replacement")

    run(main)


def test_conflicts_and_store_errors_are_retried_with_backoff() -> None:
    async def main() -> None:
        store, _, _, controllers = setup()
        store.fail[("create", "Pod")] = [Conflict("busy"), Unavailable("disk"), Unavailable("disk")]
        async with running(controllers):
            await store.create(deployment(replicas=2))
            await eventually(lambda: len(pods(store)) == 2, what="pods despite errors")
        deploy = controllers[0]
        # creates run concurrently, so two injected errors can fail one attempt together
        assert deploy.stats.conflicts + deploy.stats.failures >= 2
        assert deploy.stats.failures >= 1

    run(main)


def test_idle_controllers_do_not_spin() -> None:
    async def main() -> None:
        store, _, _, _ = setup()
        clock = FakeClock()
        controllers = [Controller(DeploymentReconciler(), store, clock), Controller(GarbageCollector(), store, clock)]
        async with running(controllers):
            await store.create(deployment(replicas=2))
            await eventually(lambda: len(pods(store)) == 2, what="pods")
            await eventually(lambda: [d.status.replicas for d in store.objects("Deployment")
                                      if isinstance(d, Deployment)] == [2], what="status")
            await asyncio.sleep(0.5)  # past the coalescing delay for related changes
            settled = [c.stats.reconciles for c in controllers]
            writes = sum(store.writes.values())
            await asyncio.sleep(0.3)
            assert [c.stats.reconciles for c in controllers] == settled
            assert sum(store.writes.values()) == writes

    run(main)


def test_event_recorder_aggregates_identical_events() -> None:
    async def main() -> None:
        clock = FakeClock()
        store = MemStore(clock)
        node = await store.create(online_node("gw-1"))
        recorder = EventRecorder(store, clock)
        emit = EmitEvent(ref_of(node), "NodeOffline", "node gw-1 stopped heartbeating")
        first = await recorder.record(emit)
        clock.advance(5)
        await recorder.record(emit)
        second_recorder = EventRecorder(store, clock)  # no memory: must find and bump the existing Event
        clock.advance(5)
        await second_recorder.record(emit)
        await recorder.record(EmitEvent(ref_of(node), "NodeOnline", "node gw-1 is Online"))  # stale memory ok
        await recorder.record(emit)
        events = [e for e in store.objects("Event") if isinstance(e, Event)]
        assert len(events) == 2
        offline = next(e for e in events if e.reason == "NodeOffline")
        assert first is not None and offline.metadata.name == first.metadata.name
        assert offline.metadata.name.startswith("gw-1.") and len(offline.metadata.name) == len("gw-1.") + 10
        assert offline.metadata.namespace == "default"
        assert offline.count == 4
        assert (offline.first_timestamp, offline.last_timestamp) == ("2026-11-23T08:00:00Z", "2026-11-23T08:00:10Z")
        assert offline.involved_object.kind == "Node" and offline.involved_object.name == "gw-1"

    run(main)


async def _schedule_all(store: MemStore, node: str) -> None:
    for pod in pods(store):
        if not pod.spec.node_name:
            await store.update(msgspec.structs.replace(pod, spec=msgspec.structs.replace(pod.spec, node_name=node),
                                                       status=ready_status()))


def node_phase(store: MemStore, name: str = "n1") -> NodePhase:
    node = next(n for n in store.objects("Node") if isinstance(n, Node) and n.metadata.name == name)
    return node.status.phase


def test_silent_node_goes_offline_and_its_deployment_pods_move_bare_pods_stay() -> None:
    async def main() -> None:
        store, clock, leases, controllers = setup()
        await store.create(online_node("n1"))
        async with running(controllers):
            leases.renew("n1", clock())
            await store.create(deployment(replicas=2))
            await store.create(bare_pod("bare", "n1"))
            await eventually(lambda: len(pods(store)) == 3, what="pods")
            await _schedule_all(store, "n1")
            node_writes = store.writes[("MODIFIED", "Node")]
            for _ in range(3):  # heartbeats every 2 s keep it Online with zero node writes
                clock.advance(2)
                leases.renew("n1", clock())
                await asyncio.sleep(0.1)
            assert node_phase(store) == NodePhase.ONLINE
            assert store.writes[("MODIFIED", "Node")] == node_writes
            moved = {p.metadata.name for p in pods(store) if p.metadata.owner_references}
            clock.advance(7.9)
            await asyncio.sleep(0.15)
            assert node_phase(store) == NodePhase.ONLINE
            clock.advance(0.2)  # 8.1 s of silence
            await eventually(lambda: node_phase(store) == NodePhase.OFFLINE, timeout=1, what="Offline")
            await eventually(lambda: not moved & pod_names(store) and len(pods(store)) == 3, what="replacements")
            bare = next(p for p in pods(store) if p.metadata.name == "bare")
            assert (bare.status.phase, bare.status.reason) == (PodPhase.UNKNOWN, "NodeLost")
            assert all(not p.spec.node_name for p in pods(store) if p.metadata.owner_references)
            reasons = {e.reason for e in store.objects("Event") if isinstance(e, Event)}
            assert {"NodeOffline", "Evicted", "NodeLost"} <= reasons
            leases.renew("n1", clock())  # heartbeat resumes: the lease listener wakes the node at once
            await eventually(lambda: node_phase(store) == NodePhase.ONLINE, timeout=1, what="Online again")
            node = store.objects("Node")[0]
            assert isinstance(node, Node) and node.spec.taints == []

    run(main)


def test_server_restart_never_declares_live_nodes_offline() -> None:
    async def main() -> None:
        clock = FakeClock()
        store = MemStore(clock)
        await store.create(online_node("n1"))
        clock.advance(3600)  # the server was down for an hour; stored state says Online
        leases = LeaseTable(started_at=clock())
        controllers = build_controllers(store, leases, clock, node_sweep=0.05, cluster_cidr=None)
        writes = store.writes[("MODIFIED", "Node")]
        async with running(controllers):
            clock.advance(7)
            await asyncio.sleep(0.2)
            assert node_phase(store) == NodePhase.ONLINE and store.writes[("MODIFIED", "Node")] == writes
            leases.renew("n1", clock())  # the agent reconnects within the grace period
            clock.advance(7)
            await asyncio.sleep(0.2)
            assert node_phase(store) == NodePhase.ONLINE and store.writes[("MODIFIED", "Node")] == writes
            clock.advance(1.5)  # now silent for 8.5 s since its last heartbeat
            await eventually(lambda: node_phase(store) == NodePhase.OFFLINE, timeout=1, what="Offline")

    run(main)
