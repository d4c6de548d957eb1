"""Builders for scheduler unit tests: nodes and pods as users and agents would write them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from shoal.model import Node, Pod
from shoal.scheduler import Binding, Decision, Preemption, Unschedulable


def node(name: str, *, zone: str = "z1", arch: str = "amd64", cpu: str = "4", memory: str = "4Gi",
         pods: int = 110, phase: str = "Online", unschedulable: bool = False,
         taints: Iterable[Mapping[str, str]] = (), runtimes: Iterable[str] = ("oci", "wasm"),
         battery: float | None = None, watts: float | None = None, rtt: Mapping[str, float] | None = None,
         images: Iterable[str] = (), labels: Mapping[str, str] | None = None) -> Node:
    power: dict[str, Any] | None = None
    if battery is not None or watts is not None:
        power = {"source": "battery" if battery is not None else "mains"}
        if battery is not None:
            power["batteryPercent"] = battery
        if watts is not None:
            power["watts"] = watts
    status: dict[str, Any] = {"phase": phase, "allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)},
                              "runtimes": list(runtimes), "rttMs": dict(rtt or {}), "images": list(images)}
    if power is not None:
        status["power"] = power
    return msgspec.convert({
        "kind": "Node",
        "metadata": {"name": name, "labels": {"shoal.io/zone": zone, "shoal.io/arch": arch, **(labels or {})}},
        "spec": {"unschedulable": unschedulable, "taints": list(taints)},
        "status": status}, Node)


def pod(name: str, *, cpu: str | None = None, memory: str | None = None, owner: str | None = None,
        policy: str = "", selector: Mapping[str, str] | None = None,
        tolerations: Iterable[Mapping[str, Any]] = (), host_port: int = 0, image: str = "app:1",
        runtime: str = "oci", edge: Mapping[str, Any] | None = None, priority: int = 0,
        node_name: str = "", affinity: Mapping[str, Any] | None = None, phase: str = "Pending") -> Pod:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "c", "image": image, "resources": {"requests": requests}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    spec: dict[str, Any] = {"containers": [container], "runtime": runtime, "schedulingPolicy": policy,
                            "nodeSelector": dict(selector or {}), "tolerations": list(tolerations),
                            "priority": priority, "nodeName": node_name}
    if edge is not None:
        spec["edge"] = dict(edge)
    if affinity is not None:
        spec["affinity"] = {"nodeAffinity": dict(affinity)}
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if owner is not None:
        metadata["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}",
                                        "controller": True}]
    return msgspec.convert({"kind": "Pod", "metadata": metadata, "spec": spec, "status": {"phase": phase}}, Pod)


def placements(decisions: Iterable[Decision]) -> dict[str, str]:
    """pod name → node name for the Bindings (and Preemptions) among ``decisions``."""
    return {d.pod_key[1]: d.node for d in decisions if isinstance(d, Binding | Preemption)}


def only_unschedulable(decisions: list[Decision]) -> Unschedulable:
    assert len(decisions) == 1 and isinstance(decisions[0], Unschedulable), decisions
    return decisions[0]
