"""The numpy batch path makes exactly the reference loop's decisions on random fleets and pods."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sched_fleet import node, pod

from shoal.model import Node, Pod
from shoal.scheduler import POLICIES, ClusterSnapshot, schedule, schedule_reference

ZONES = ["z0", "z1", "z2"]
TAINTS = [{"key": "gpu", "effect": "NoSchedule"}, {"key": "edge", "value": "x", "effect": "PreferNoSchedule"},
          {"key": "flaky", "effect": "NoExecute"}]
TOLERATIONS = [{"key": "gpu", "operator": "Exists"}, {"key": "edge", "value": "x"}, {"operator": "Exists"}]


@st.composite
def fleets(draw: st.DrawFn) -> list[Node]:
    count = draw(st.integers(1, 12))
    return [node(
        f"n{i:02d}", zone=draw(st.sampled_from(ZONES)), arch=draw(st.sampled_from(["amd64", "arm64"])),
        cpu=str(draw(st.integers(1, 4))), memory=f"{draw(st.integers(1, 4))}Gi", pods=draw(st.integers(1, 8)),
        phase=draw(st.sampled_from(["Online"] * 9 + ["Offline", "Maintenance", "Pending"])),
        unschedulable=draw(st.booleans()) and draw(st.booleans()),
        taints=draw(st.lists(st.sampled_from(TAINTS), max_size=2, unique_by=lambda t: t["key"]))
        if draw(st.integers(0, 3)) == 0 else [],
        runtimes=draw(st.sampled_from([("oci",), ("oci", "wasm"), ("oci", "wasm"), ("wasm",)])),
        battery=draw(st.none() | st.floats(0, 100)), watts=draw(st.none() | st.floats(0.5, 40)),
        rtt={z: draw(st.floats(0.1, 150)) for z in ZONES if draw(st.booleans())},
        images=draw(st.lists(st.sampled_from(["app:1", "app:2", "db:1"]), max_size=2)),
        labels={"tier": draw(st.sampled_from(["a", "b"]))} if draw(st.booleans()) else {})
        for i in range(count)]


@st.composite
def templates(draw: st.DrawFn) -> dict[str, Any]:
    edge: dict[str, Any] | None = None
    if draw(st.integers(0, 2)) == 0:
        edge = {"zone": draw(st.sampled_from(ZONES))}
        if draw(st.booleans()):
            edge["maxLatencyMs"] = draw(st.floats(1, 100))
        if draw(st.booleans()):
            edge["minBatteryPercent"] = draw(st.floats(0, 100))
    affinity = None
    if draw(st.integers(0, 3)) == 0:
        term = {"matchExpressions": [{"key": "tier", "operator": draw(st.sampled_from(["In", "NotIn", "Exists"])),
                                      "values": ["a"]}]}
        affinity = ({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
                    if draw(st.booleans()) else
                    {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "preference": term}]})
    return {
        "cpu": draw(st.none() | st.sampled_from(["100m", "500m", "1", "1500m"])),
        "memory": draw(st.none() | st.sampled_from(["64Mi", "512Mi", "1Gi"])),
        "policy": draw(st.sampled_from(["", *POLICIES])),
        "selector": draw(st.sampled_from([{}, {}, {}, {"shoal.io/arch": "arm64"}, {"tier": "b"}])),
        "tolerations": draw(st.lists(st.sampled_from(TOLERATIONS), max_size=2)),
        "host_port": draw(st.sampled_from([0, 0, 8080])), "image": draw(st.sampled_from(["app:1", "db:1"])),
        "runtime": draw(st.sampled_from(["oci", "oci", "oci", "wasm"])), "edge": edge, "affinity": affinity,
        "owner": draw(st.none() | st.sampled_from(["web", "api"])),
        "priority": draw(st.sampled_from([0, 0, 10, 100])),
    }


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[Node], list[Pod], list[Pod], str]:
    nodes = draw(fleets())
    bound = []
    for i in range(draw(st.integers(0, 8)) if nodes else 0):
        target = draw(st.sampled_from(nodes)).metadata.name
        bound.append(pod(f"old{i}", cpu=draw(st.sampled_from(["100m", "1"])), memory="256Mi",
                         priority=draw(st.sampled_from([0, 5, 50])), node_name=target, phase="Running",
                         host_port=draw(st.sampled_from([0, 8080])), owner=draw(st.none() | st.just("web"))))
    pending = []
    for t, template in enumerate(draw(st.lists(templates(), min_size=1, max_size=5))):
        for i in range(draw(st.integers(1, 6))):
            pending.append(pod(f"t{t}-{i}", **template))
    order = draw(st.permutations(pending))
    return nodes, bound, list(order), draw(st.sampled_from(list(POLICIES)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_batch_equals_reference(case: tuple[list[Node], list[Pod], list[Pod], str]) -> None:
    nodes, bound, pending, policy = case
    snapshot = ClusterSnapshot.build(nodes, bound)
    expected = schedule_reference(snapshot, pending, policy)
    for kind in {type(decision).__name__ for decision in expected}:
        event(kind)
    assert schedule(snapshot, pending, policy) == expected
    # The snapshot is not consumed: a second call gives the same answer.
    assert schedule(snapshot, pending, policy) == expected
    # A snapshot grown with with_pods decides like one built from scratch.
    half = len(bound) // 2
    grown = ClusterSnapshot.build(nodes, bound[:half]).with_pods(bound[half:])
    assert schedule(grown, pending, policy) == expected
