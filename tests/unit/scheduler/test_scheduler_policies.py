"""Policies place differently on one fleet; Spread, priority, preemption and scores as users see them."""

from __future__ import annotations

from typing import Any

import pytest
from sched_fleet import node, only_unschedulable, placements, pod

from shoal.model import Pod
from shoal.scheduler import Binding, ClusterSnapshot, Preemption, schedule, schedule_reference

PATHS = [schedule, schedule_reference]


def fleet() -> ClusterSnapshot:
    """Five nodes that differ in fill, zone, power and distance to zone "plant"."""
    nodes = [
        node("a", zone="z1", memory="8Gi", watts=40, rtt={"plant": 50}),  # mains, 10 W/core
        node("b", zone="z1", memory="8Gi", battery=40, watts=8, rtt={"plant": 60}),  # nearly full
        node("c", zone="z2", memory="8Gi", battery=30, rtt={"plant": 40}),  # empty
        node("d", zone="plant", memory="8Gi", battery=20),  # in the plant
        node("e", zone="z2", memory="8Gi", watts=2, rtt={"plant": 90}),  # mains, 0.5 W/core
    ]
    bound = [pod("x", cpu="1", memory="2Gi", node_name="a", phase="Running", owner="web"),
             pod("y", cpu="3", memory="6Gi", node_name="b", phase="Running"),
             pod("z", cpu="1", memory="2Gi", node_name="d", phase="Running", owner="web"),
             pod("w", cpu="500m", memory="1Gi", node_name="e", phase="Running")]
    return ClusterSnapshot.build(nodes, bound)


def replicas(policy: str, count: int = 3, **extra: Any) -> list[Pod]:
    return [pod(f"p{i}", cpu="500m", memory="1Gi", owner="web", policy=policy, image="new:1",
                edge={"zone": "plant"}, **extra) for i in range(count)]


EXPECTED = {
    "FirstFit": ["a", "a", "a"],  # first feasible node by name
    "RoundRobin": ["e", "a", "b"],  # 4 bound pods: the cursor starts at node 4 of 5 and advances per binding
    "BestFit": ["b", "b", "a"],  # the fullest node that fits, until it is full
    "WorstFit": ["c", "c", "e"],  # the emptiest node (ties by name)
    "Spread": ["c", "e", "b"],  # nodes without a "web" replica, zone z2 (no replica) first
    "LowLatency": ["d", "d", "d"],  # inside zone plant: 0 ms
    "EnergySaver": ["e", "e", "e"],  # mains power and the fewest watts per core
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("policy", list(EXPECTED))
def test_each_policy_places_distinctly(path: Any, policy: str) -> None:
    decided = placements(path(fleet(), replicas(policy)))
    assert [decided[f"p{i}"] for i in range(3)] == EXPECTED[policy]


def test_policy_sequences_are_all_different() -> None:
    assert len({tuple(v) for v in EXPECTED.values()}) == len(EXPECTED)


def test_cluster_default_applies_and_pod_policy_overrides() -> None:
    bare = [pod("p", cpu="500m", memory="1Gi", image="new:1")]
    assert placements(schedule(fleet(), bare, "FirstFit")) == {"p": "a"}
    assert placements(schedule(fleet(), bare, "WorstFit")) == {"p": "c"}
    assert placements(schedule(fleet(), [pod("p", policy="WorstFit", image="new:1")], "FirstFit")) == {"p": "c"}


def test_round_robin_rotates_across_calls() -> None:
    nodes = [node(n) for n in "abc"]
    first = placements(schedule(ClusterSnapshot.build(nodes, []), [pod("p1")], "RoundRobin"))
    bound = [pod("p1", node_name=first["p1"], phase="Running")]
    second = placements(schedule(ClusterSnapshot.build(nodes, bound), [pod("p2")], "RoundRobin"))
    assert (first, second) == ({"p1": "a"}, {"p2": "b"})


@pytest.mark.parametrize("path", PATHS)
def test_spread_uses_every_node_and_zone_even_without_requests(path: Any) -> None:
    nodes = [node(f"n{i}", zone=f"z{i % 3}") for i in range(6)]
    pods = [pod(f"r{i}", owner="web") for i in range(6)]  # no requests; default policy BestFit
    decided = path(ClusterSnapshot.build(nodes, []), pods, "BestFit")
    where = placements(decided)
    assert sorted(where.values()) == [f"n{i}" for i in range(6)]
    zones_of_first_three = {int(where[f"r{i}"][1:]) % 3 for i in range(3)}
    assert zones_of_first_three == {0, 1, 2}
    assert "TopologySpread" in decided[0].scores


@pytest.mark.parametrize("path", PATHS)
def test_spread_still_schedules_more_replicas_than_nodes(path: Any) -> None:
    nodes = [node("a", zone="z1"), node("b", zone="z2")]
    where = placements(path(ClusterSnapshot.build(nodes, []), [pod(f"r{i}", owner="web") for i in range(5)]))
    assert len(where) == 5
    assert sorted(where.values()).count("a") in (2, 3)


def test_single_replica_owner_keeps_cluster_default() -> None:
    nodes = [node("a"), node("b")]
    decided = schedule(ClusterSnapshot.build(nodes, []), [pod("only", owner="solo")], "FirstFit")
    assert isinstance(decided[0], Binding) and decided[0].scores == {}


@pytest.mark.parametrize("path", PATHS)
def test_higher_priority_is_placed_first(path: Any) -> None:
    nodes = [node("a", cpu="1")]
    decided = path(ClusterSnapshot.build(nodes, []), [pod("low", cpu="1"), pod("high", cpu="1", priority=10)])
    assert [d.pod_key[1] for d in decided] == ["high", "low"]
    assert placements(decided) == {"high": "a"}


@pytest.mark.parametrize("path", PATHS)
def test_preemption_evicts_fewest_lower_priority_pods(path: Any) -> None:
    nodes = [node("a", cpu="2"), node("b", cpu="2")]
    bound = [pod("a1", cpu="1", node_name="a", phase="Running", priority=1),
             pod("a2", cpu="1", node_name="a", phase="Running", priority=1),
             pod("b1", cpu="1500m", node_name="b", phase="Running", priority=1),
             pod("b2", cpu="500m", node_name="b", phase="Running", priority=50)]
    decided = path(ClusterSnapshot.build(nodes, bound), [pod("vip", cpu="1500m", priority=10)])
    assert decided == [Preemption(("default", "vip"), "b", (("default", "b1"),))]


@pytest.mark.parametrize("path", PATHS)
def test_no_preemption_of_equal_or_higher_priority(path: Any) -> None:
    bound = [pod("old", cpu="2", node_name="a", phase="Running", priority=10)]
    result = only_unschedulable(path(ClusterSnapshot.build([node("a", cpu="2")], bound),
                                     [pod("new", cpu="1", priority=10)]))
    assert result.message == "0/1 nodes are available: 1 Insufficient cpu."


def test_preempted_room_is_taken_by_the_preemptor_within_the_round() -> None:
    bound = [pod("old", cpu="2", node_name="a", phase="Running")]
    decided = schedule(ClusterSnapshot.build([node("a", cpu="2")], bound),
                       [pod("vip", cpu="2", priority=5), pod("other", cpu="1", priority=5)])
    assert isinstance(decided[0], Preemption)
    assert only_unschedulable(decided[1:]).reasons == {"Insufficient cpu": 1}


def test_scores_explain_the_choice() -> None:
    decided = schedule(fleet(), replicas("LowLatency", count=1))
    assert isinstance(decided[0], Binding)
    assert decided[0].scores["LatencyAware"] == 100.0
    assert decided[0].scores["total"] == sum(
        w * decided[0].scores[k] for k, w in {"LatencyAware": 10, "LeastAllocated": 1, "ImageLocality": 1,
                                              "NodeAffinity": 1, "TaintToleration": 1}.items())


@pytest.mark.parametrize("path", PATHS)
def test_preferred_affinity_and_soft_taints_steer_the_choice(path: Any) -> None:
    nodes = [node("a"), node("b", labels={"disk": "ssd"}),
             node("c", labels={"disk": "ssd"}, taints=[{"key": "slow", "effect": "PreferNoSchedule"}])]
    term = {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}
    candidate = pod("p", affinity={"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": term}]})
    assert placements(path(ClusterSnapshot.build(nodes, []), [candidate], "WorstFit")) == {"p": "b"}


@pytest.mark.parametrize("path", PATHS)
def test_image_locality_prefers_nodes_with_the_image(path: Any) -> None:
    nodes = [node("a"), node("b", images=["big:1"])]
    assert placements(path(ClusterSnapshot.build(nodes, []), [pod("p", image="big:1")], "BestFit")) == {"p": "b"}


def test_snapshot_is_reusable_after_schedule() -> None:
    snapshot = fleet()
    used_before = snapshot.used.copy()
    first = schedule(snapshot, replicas("BestFit", count=5))
    assert (snapshot.used == used_before).all()
    assert schedule(snapshot, replicas("BestFit", count=5)) == first
