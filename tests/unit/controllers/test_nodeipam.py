"""Pod CIDR assignment: the first free subnet, never one another node uses."""

from __future__ import annotations

import ipaddress

from shoal.controllers import EmitEvent, Update, assign_pod_cidr
from shoal.model import Node, NodeSpec, ObjectMeta

CLUSTER = ipaddress.ip_network("10.77.0.0/16")


def _node(name: str, cidr: str = "") -> Node:
    return Node(metadata=ObjectMeta(name=name), spec=NodeSpec(pod_cidr=cidr))


def test_first_free_subnet_is_assigned() -> None:
    others = [_node("a", "10.77.0.0/24"), _node("b", "10.77.2.0/24"), _node("sim", "10.200.0.0/24")]
    [step] = assign_pod_cidr(_node("c"), others, CLUSTER, 24).steps
    assert isinstance(step, Update) and isinstance(step.obj, Node)
    assert step.obj.spec.pod_cidr == "10.77.1.0/24"


def test_a_node_with_a_cidr_keeps_it() -> None:
    assert assign_pod_cidr(_node("a", "192.168.7.0/24"), [], CLUSTER, 24).steps == ()


def test_overlapping_custom_ranges_count_as_taken() -> None:
    others = [_node("big", "10.77.0.0/23")]
    [step] = assign_pod_cidr(_node("c"), others, CLUSTER, 24).steps
    assert isinstance(step, Update) and isinstance(step.obj, Node)
    assert step.obj.spec.pod_cidr == "10.77.2.0/24"


def test_an_exhausted_cluster_cidr_says_how_to_fix_it() -> None:
    small = ipaddress.ip_network("10.77.0.0/24")
    [step] = assign_pod_cidr(_node("c"), [_node("a", "10.77.0.0/25"), _node("b", "10.77.0.128/25")], small, 25).steps
    assert isinstance(step, EmitEvent) and "widen --cluster-cidr" in step.message
