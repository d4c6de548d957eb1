"""Each filter rejects the nodes it should, with the reason users see, on both paths."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from sched_fleet import node, only_unschedulable, placements, pod

from shoal.model import Node, Pod
from shoal.scheduler import ClusterSnapshot, Unschedulable, schedule, schedule_reference

PATHS = [schedule, schedule_reference]


def decide(path: Any, nodes: list[Node], pods: list[Pod], bound: list[Pod] | None = None,
           policy: str = "FirstFit") -> Any:
    return path(ClusterSnapshot.build(nodes, bound or []), pods, policy)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("bad", "candidate", "reason"), [
    (node("a", phase="Offline"), pod("p"), "node(s) were offline"),
    (node("a", phase="Maintenance"), pod("p"), "node(s) were unschedulable"),
    (node("a", unschedulable=True), pod("p"), "node(s) were unschedulable"),
    (node("a", phase="Pending"), pod("p"), "node(s) were not ready"),
    (node("a", cpu="1"), pod("p", cpu="2"), "Insufficient cpu"),
    (node("a", memory="1Gi"), pod("p", memory="2Gi"), "Insufficient memory"),
    (node("a", pods=0), pod("p"), "Too many pods"),
    (node("a", labels={"tier": "a"}), pod("p", selector={"tier": "b"}), "node(s) didn't match node selector"),
    (node("a", arch="amd64"), pod("p", selector={"shoal.io/arch": "arm64"}), "node(s) didn't match arch"),
    (node("a", runtimes=["oci"]), pod("p", runtime="wasm"), "node(s) didn't support runtime"),
    (node("a", taints=[{"key": "gpu", "effect": "NoSchedule"}]), pod("p"), "node(s) had untolerated taint"),
    (node("a", taints=[{"key": "x", "effect": "NoExecute"}]), pod("p"), "node(s) had untolerated taint"),
    (node("a", zone="z1", rtt={"plant": 40.0}), pod("p", edge={"zone": "plant", "maxLatencyMs": 20}),
     "node(s) exceeded latency bound"),
    (node("a", zone="z1"), pod("p", edge={"zone": "plant", "maxLatencyMs": 20}), "node(s) exceeded latency bound"),
    (node("a", battery=20), pod("p", edge={"minBatteryPercent": 30}), "node(s) had battery below minimum"),
])
def test_filter_rejects_with_reason(path: Any, bad: Node, candidate: Pod, reason: str) -> None:
    good = node("b", zone="plant", arch="arm64", cpu="8", memory="8Gi", labels={"tier": "b"},
                battery=None, runtimes=["oci", "wasm"])
    decisions = decide(path, [bad], [candidate])
    result = only_unschedulable(decisions)
    assert result.reasons == {reason: 1}
    assert result.message == f"0/1 nodes are available: 1 {reason}."
    assert placements(decide(path, [bad, good], [candidate])) == {"p": "b"}


@pytest.mark.parametrize("path", PATHS)
def test_tolerations_admit_tainted_nodes(path: Any) -> None:
    tainted = node("a", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    assert placements(decide(path, [tainted], [pod("p", tolerations=[{"key": "gpu", "operator": "Exists"}])])) \
        == {"p": "a"}
    assert placements(decide(path, [tainted], [pod("p", tolerations=[{"key": "gpu", "value": "yes"}])])) \
        == {"p": "a"}
    assert placements(decide(path, [tainted], [pod("p", tolerations=[{"key": "gpu", "value": "no"}])])) == {}
    soft = node("a", taints=[{"key": "edge", "effect": "PreferNoSchedule"}])
    assert placements(decide(path, [soft], [pod("p")])) == {"p": "a"}


@pytest.mark.parametrize("path", PATHS)
def test_latency_counts_own_zone_as_zero_and_mains_passes_battery(path: Any) -> None:
    inside = node("a", zone="plant")
    assert placements(decide(path, [inside], [pod("p", edge={"zone": "plant", "maxLatencyMs": 0})])) == {"p": "a"}
    mains = node("a", watts=10)
    assert placements(decide(path, [mains], [pod("p", edge={"minBatteryPercent": 99})])) == {"p": "a"}


@pytest.mark.parametrize("path", PATHS)
def test_host_ports_and_bound_pods_count(path: Any) -> None:
    a = node("a", cpu="2")
    bound = [pod("old", cpu="1500m", host_port=8080, node_name="a", phase="Running"),
             pod("done", cpu="2", node_name="a", phase="Succeeded")]
    result = only_unschedulable(decide(path, [a], [pod("p", host_port=8080)], bound))
    assert result.reasons == {"node(s) didn't have free ports": 1}
    result = only_unschedulable(decide(path, [a], [pod("p", cpu="1")], bound))
    assert result.reasons == {"Insufficient cpu": 1}
    # Two new pods wanting one host port: only the first gets the node.
    decisions = decide(path, [node("b")], [pod("p1", host_port=9000), pod("p2", host_port=9000)])
    assert placements(decisions) == {"p1": "b"}


@pytest.mark.parametrize("path", PATHS)
def test_required_node_affinity(path: Any) -> None:
    nodes = [node("a", labels={"tier": "edge"}), node("b", labels={"tier": "core"}), node("c")]
    term = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["core"]}]}
    candidate = pod("p", affinity={"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}})
    assert placements(decide(path, nodes, [candidate])) == {"p": "b"}
    absent = {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}
    candidate = pod("p", affinity={"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [absent]}})
    assert placements(decide(path, nodes, [candidate])) == {"p": "c"}


def test_aggregated_message_counts_every_reason() -> None:
    nodes = [node(f"m{i}", memory="1Gi") for i in range(3)] + [node(f"o{i}", phase="Offline") for i in range(2)]
    result = only_unschedulable(schedule(ClusterSnapshot.build(nodes, []), [pod("p", memory="2Gi")]))
    assert result.message == "0/5 nodes are available: 3 Insufficient memory, 2 node(s) were offline."
    assert result.reasons == {"Insufficient memory": 3, "node(s) were offline": 2}


def test_invalid_quantity_is_unschedulable_naming_the_field() -> None:
    result = only_unschedulable(schedule(ClusterSnapshot.build([node("a")], []), [pod("p", memory="64MB")]))
    assert "spec.containers[0].resources.requests.memory" in result.message
    assert '"64Mi"' in result.message


def test_unknown_pod_policy_names_the_valid_ones() -> None:
    result = schedule(ClusterSnapshot.build([node("a")], []), [pod("p", policy="Fastest")])
    assert isinstance(result[0], Unschedulable)
    assert "spec.schedulingPolicy" in result[0].message and "BestFit" in result[0].message


def test_unknown_cluster_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="use one of FirstFit"):
        schedule(ClusterSnapshot.build([node("a")], []), [pod("p")], "Fastest")


def test_empty_fleet() -> None:
    result = only_unschedulable(schedule(ClusterSnapshot.build([], []), [pod("p")]))
    assert result.message == "0/0 nodes are available."


@pytest.mark.parametrize("path", PATHS)
def test_extended_resources_fit_and_grow_the_snapshot(path: Any) -> None:
    serial = node("s")
    serial = msgspec.structs.replace(serial, status=msgspec.structs.replace(
        serial.status, allocatable={**serial.status.allocatable, "shoal.io/serial": "1"}))
    plain = node("a")
    wants = pod("p")
    container = msgspec.structs.replace(wants.spec.containers[0], resources=msgspec.convert(
        {"limits": {"shoal.io/serial": 1}}, type(wants.spec.containers[0].resources)))
    wants = msgspec.structs.replace(wants, spec=msgspec.structs.replace(wants.spec, containers=[container]))
    result = only_unschedulable(decide(path, [plain], [wants]))
    assert result.reasons == {"Insufficient shoal.io/serial": 1}
    assert placements(decide(path, [plain, serial], [wants])) == {"p": "s"}
    # Once one serial pod is bound (added with with_pods), the next one no longer fits.
    taken = msgspec.structs.replace(wants, spec=msgspec.structs.replace(wants.spec, node_name="s"))
    grown = ClusterSnapshot.build([plain, serial], []).with_pods([taken])
    result = only_unschedulable(path(grown, [msgspec.structs.replace(
        wants, metadata=msgspec.structs.replace(wants.metadata, name="q"))], "FirstFit"))
    assert result.reasons == {"Insufficient shoal.io/serial": 2}
