"""The allocation ledger's rules: which entries still hold a node's resources, and what fits."""

from __future__ import annotations

from shoal.model import Container, ObjectMeta, Pod, PodPhase, PodSpec, PodStatus
from shoal.model.allocation import AllocatedPort, PodAllocation
from shoal.model.pod import ContainerPort, ResourceRequirements
from shoal.server.ledger import PodLookup, RequestsMemo, admit, allocation_of, holds, prune

NODE = "edge-1"
ALLOCATABLE = {"cpu": 1000, "memory": 1 << 30, "pods": 110}


def _pod(name: str, rv: int, cpu: str = "300m", node: str = "", uid: str = "",
         phase: PodPhase = PodPhase.PENDING, host_port: int = 0, memory: str = "") -> Pod:
    requests: dict[str, str | int | float] = {"cpu": cpu}
    if memory:
        requests["memory"] = memory
    ports = [ContainerPort(container_port=80, host_port=host_port)] if host_port else []
    spec = PodSpec(node_name=node, containers=[Container(
        name="app", image="app:1", ports=ports, resources=ResourceRequirements(requests=requests))])
    meta = ObjectMeta(name=name, namespace="default", uid=uid or f"uid-{name}", resource_version=str(rv))
    return Pod(metadata=meta, spec=spec, status=PodStatus(phase=phase))


def _lookup(*pods: Pod) -> PodLookup:
    table = {(p.metadata.namespace, p.metadata.name): p for p in pods}
    return table.get


def test_entry_records_requests_ports_and_the_version_bound_against() -> None:
    entry = allocation_of(_pod("a", 7, cpu="250m", memory="64Mi", host_port=8080))
    assert entry.requests == {"cpu": 250, "memory": 64 << 20, "pods": 1}
    assert entry.host_ports == [AllocatedPort(protocol="TCP", port=8080)]
    assert (entry.namespace, entry.name, entry.uid, entry.resource_version) == ("default", "a", "uid-a", "7")


def test_unreadable_quantity_still_holds_a_pod_slot() -> None:
    assert allocation_of(_pod("a", 1, cpu="lots")).requests == {"pods": 1}


def test_requests_memo_parses_one_template_once_and_agrees_with_the_plain_path() -> None:
    memo = RequestsMemo()
    first, second = _pod("a", 1), _pod("b", 2)
    assert memo(first.spec) is memo(second.spec)
    assert memo(_pod("c", 3, cpu="500m").spec) == {"cpu": 500, "pods": 1}


def test_entry_holds_while_its_binding_may_be_in_flight() -> None:
    entry = allocation_of(_pod("a", 10))
    assert holds(entry, _pod("a", 10), NODE, seen_revision=50)  # same version, still unbound


def test_entry_is_dropped_once_the_pod_moved_past_the_bound_version_unbound() -> None:
    entry = allocation_of(_pod("a", 10))
    assert not holds(entry, _pod("a", 11), NODE, seen_revision=50)


def test_entry_holds_when_the_cache_has_an_older_pod_version() -> None:
    entry = allocation_of(_pod("a", 10))
    assert holds(entry, _pod("a", 9), NODE, seen_revision=9)


def test_bound_here_holds_until_it_finishes() -> None:
    entry = allocation_of(_pod("a", 10))
    assert holds(entry, _pod("a", 11, node=NODE, phase=PodPhase.RUNNING), NODE, 50)
    assert not holds(entry, _pod("a", 12, node=NODE, phase=PodPhase.SUCCEEDED), NODE, 50)
    assert not holds(entry, _pod("a", 12, node=NODE, phase=PodPhase.FAILED), NODE, 50)


def test_bound_elsewhere_is_dropped() -> None:
    entry = allocation_of(_pod("a", 10))
    assert not holds(entry, _pod("a", 11, node="edge-2"), NODE, 50)


def test_missing_pod_is_dropped_only_once_the_cache_has_seen_its_version() -> None:
    entry = allocation_of(_pod("a", 10))
    assert holds(entry, None, NODE, seen_revision=9)  # the cache may not have seen it created yet
    assert not holds(entry, None, NODE, seen_revision=10)  # seen, now gone: deleted


def test_recreated_pod_under_the_same_name_does_not_inherit_the_entry() -> None:
    entry = allocation_of(_pod("a", 10))
    assert not holds(entry, _pod("a", 20, uid="another", node=NODE), NODE, 50)


def test_prune_keeps_one_entry_per_pod_and_adds_pods_bound_outside_the_ledger() -> None:
    kept_pod = _pod("a", 11, node=NODE, phase=PodPhase.RUNNING)
    stale = allocation_of(_pod("b", 3))
    direct = _pod("c", 40, cpu="100m", node=NODE, phase=PodPhase.RUNNING)
    entries = [allocation_of(kept_pod), allocation_of(kept_pod), stale]
    lookup = _lookup(kept_pod, _pod("b", 4), direct)
    result = prune(entries, lookup, NODE, seen_revision=50, bound_here=[kept_pod, direct])
    assert [e.name for e in result] == ["a", "c"]


def test_admit_takes_candidates_in_order_while_they_fit() -> None:
    committed = [allocation_of(_pod("a", 1, node=NODE)), allocation_of(_pod("b", 2, node=NODE))]  # 600m
    candidates = [allocation_of(_pod(f"n{i}", 10 + i)) for i in range(3)]
    result = admit(committed, candidates, ALLOCATABLE)
    assert [e.name for e in result.admitted] == ["n0"]
    assert [e.name for e in result.rejected] == ["n1", "n2"]
    assert sum(e.requests["cpu"] for e in result.entries) == 900


def test_admit_exactly_full_fits_and_one_more_millicore_does_not() -> None:
    assert admit([], [allocation_of(_pod("a", 1, cpu="1"))], ALLOCATABLE).admitted
    result = admit([allocation_of(_pod("a", 1, cpu="1"))], [allocation_of(_pod("b", 2, cpu="1m"))], ALLOCATABLE)
    assert not result.admitted


def test_admit_counts_pod_slots_and_unknown_resources() -> None:
    full = [allocation_of(_pod(f"p{i}", i, cpu="0")) for i in range(2)]
    assert not admit(full, [allocation_of(_pod("x", 9, cpu="0"))], {"cpu": 1000, "pods": 2}).admitted
    gpu = PodAllocation(namespace="default", name="g", uid="g", requests={"example.com/gpu": 1, "pods": 1})
    assert not admit([], [gpu], ALLOCATABLE).admitted  # the node offers no such resource


def test_admit_refuses_a_taken_host_port_but_not_another_protocol() -> None:
    taken = [allocation_of(_pod("a", 1, cpu="1m", host_port=8080))]
    assert not admit(taken, [allocation_of(_pod("b", 2, cpu="1m", host_port=8080))], ALLOCATABLE).admitted
    udp = PodAllocation(namespace="default", name="u", uid="u", requests={"pods": 1},
                        host_ports=[AllocatedPort(protocol="UDP", port=8080)])
    assert admit(taken, [udp], ALLOCATABLE).admitted


def test_admit_replaces_an_earlier_entry_of_the_same_pod_instead_of_counting_it_twice() -> None:
    earlier = allocation_of(_pod("a", 10, cpu="600m"))
    result = admit([earlier], [allocation_of(_pod("a", 11, cpu="600m"))], ALLOCATABLE)
    assert [e.resource_version for e in result.entries] == ["11"]
    assert result.admitted and not result.rejected


def test_admit_keeps_the_earlier_entry_when_the_replacement_does_not_fit() -> None:
    earlier = allocation_of(_pod("a", 10, cpu="600m"))
    other = allocation_of(_pod("b", 1, cpu="300m", node=NODE))
    bigger = PodAllocation(namespace="default", name="a", uid="uid-a", resource_version="11",
                           requests={"cpu": 800, "pods": 1})
    result = admit([earlier, other], [bigger], ALLOCATABLE)
    assert result.rejected == [bigger] and earlier in result.entries
