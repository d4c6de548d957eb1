"""Scheduler throughput: the numpy batch path against the per-pod, per-node reference loop.

Builds a mixed edge fleet (zones, arches, runtimes, taints, battery and mains nodes, some offline
or cordoned, partly full with existing pods) and a pod mix stamped from 24 templates (requests,
selectors, tolerations, policies, edge hints, host ports, priorities, Deployment replicas and
bare pods). Times ``schedule`` in rounds, applying each round's bindings to the snapshot with
``with_pods`` (timed separately), then measures ``schedule_reference`` on a sample of the same
pods (time-boxed on huge fleets) and checks both paths agree on that sample.

    .venv/bin/python benchmarks/scheduler.py --nodes 5000 --pods 10000 --json OUT
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from shoal.model import Node, ObjectMeta, OwnerReference, Pod
from shoal.model.node import NodeSpec, NodeStatus, PowerStatus, Taint
from shoal.model.pod import Container, EdgeHints, PodSpec, ResourceRequirements, Toleration
from shoal.scheduler import Binding, ClusterSnapshot, Decision, Preemption, schedule, schedule_reference

ZONES = [f"plant-{c}" for c in "abcdefghijklmnop"] + ["cloud-1", "cloud-2", "edge-x", "edge-y"]
IMAGES = [f"registry.local/acme/{name}:{v}" for name in ("reader", "web", "mqtt", "ml", "db", "proxy")
          for v in (1, 2)]


def make_fleet(count: int, rng: random.Random) -> list[Node]:
    nodes = []
    for i in range(count):
        zone = rng.choice(ZONES)
        arch = rng.choices(["amd64", "arm64", "arm"], [6, 3, 1])[0]
        cores, gib = rng.choice([(1, 1), (2, 2), (4, 4), (4, 8), (8, 16), (16, 32)])
        taints = []
        if rng.random() < 0.08:
            taints.append(Taint(key="shoal.io/gpu", value="true", effect="NoSchedule"))
        if rng.random() < 0.05:
            taints.append(Taint(key="shoal.io/flaky-link", effect="PreferNoSchedule"))
        on_battery = rng.random() < 0.3
        power = PowerStatus(source="battery" if on_battery else "mains",
                            battery_percent=round(rng.uniform(5, 100), 1) if on_battery else None,
                            watts=round(rng.uniform(2, 15 * cores), 1) if rng.random() < 0.7 else None)
        phase = rng.choices(["Online", "Offline", "Maintenance"], [96, 3, 1])[0]
        rtt = {z: (0.0 if z == zone else round(rng.uniform(2, 120), 1)) for z in rng.sample(ZONES, 5)}
        nodes.append(Node(
            metadata=ObjectMeta(name=f"node-{i:06d}", labels={
                "shoal.io/zone": zone, "shoal.io/arch": arch, "shoal.io/hostname": f"node-{i:06d}",
                "tier": rng.choice(["edge", "edge", "gateway", "core"])}),
            spec=NodeSpec(unschedulable=rng.random() < 0.01, taints=taints),
            status=NodeStatus(
                phase=phase, capacity={"cpu": str(cores), "memory": f"{gib}Gi", "pods": "110"},
                allocatable={"cpu": f"{cores * 1000 - 100}m", "memory": f"{gib * 1024 - 128}Mi", "pods": "110"},
                runtimes=["oci", "wasm"] if rng.random() < 0.6 else ["oci"], power=power, rtt_ms=rtt,
                images=rng.sample(IMAGES, rng.randint(0, 4)))))
    return nodes


def _template(name: str, cpu: str | None, memory: str | None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "cpu": cpu, "memory": memory, **extra}


GPU = [Toleration(key="shoal.io/gpu", operator="Exists")]
TEMPLATES: list[dict[str, Any]] = [
    _template("web", "100m", "64Mi", replicas=20, image=IMAGES[2]),
    _template("api", "250m", "128Mi", replicas=10, image=IMAGES[3]),
    _template("reader", "50m", "32Mi", replicas=50, image=IMAGES[0], edge=EdgeHints(zone="plant-a", max_latency_ms=40)),
    _template("reader-b", "50m", "32Mi", replicas=50, image=IMAGES[1],
              edge=EdgeHints(zone="plant-b", max_latency_ms=60), policy="LowLatency"),
    _template("mqtt", "200m", "256Mi", replicas=3, image=IMAGES[4], host_port=1883),
    _template("ml", "2", "2Gi", replicas=5, image=IMAGES[6], tolerations=GPU, selector={"shoal.io/arch": "amd64"}),
    _template("ml-arm", "1", "1Gi", replicas=5, image=IMAGES[7], selector={"shoal.io/arch": "arm64"}),
    _template("db", "500m", "1Gi", replicas=1, image=IMAGES[8], priority=100),
    _template("proxy", "100m", "64Mi", replicas=30, image=IMAGES[10], policy="WorstFit"),
    _template("batch", "1", "512Mi", replicas=10, image=IMAGES[5], policy="BestFit"),
    _template("wasm-filter", "10m", "8Mi", replicas=40, image=IMAGES[11], runtime="wasm"),
    _template("wasm-agg", "20m", "16Mi", replicas=1, image=IMAGES[11], runtime="wasm", policy="FirstFit"),
    _template("solar", "50m", "32Mi", replicas=10, image=IMAGES[0], policy="EnergySaver",
              edge=EdgeHints(min_battery_percent=40)),
    _template("rr", "100m", "64Mi", replicas=8, image=IMAGES[9], policy="RoundRobin"),
    _template("gateway", "300m", "256Mi", replicas=6, image=IMAGES[3], selector={"tier": "gateway"}),
    _template("core", "1", "1Gi", replicas=4, image=IMAGES[4], selector={"tier": "core"}, priority=50),
    _template("besteffort", None, None, replicas=1, image=IMAGES[2]),
    _template("cam", "150m", "128Mi", replicas=1, image=IMAGES[0], edge=EdgeHints(zone="edge-x", max_latency_ms=10)),
    _template("spread", None, "16Mi", replicas=25, image=IMAGES[1], policy="Spread"),
    _template("huge", "64", "256Gi", replicas=1, image=IMAGES[6]),  # fits nowhere: Unschedulable
    _template("flaky-ok", "100m", "64Mi", replicas=5, image=IMAGES[5],
              tolerations=[Toleration(key="shoal.io/flaky-link", operator="Exists")]),
    _template("cloud", "500m", "512Mi", replicas=12, image=IMAGES[9], edge=EdgeHints(zone="cloud-1")),
    _template("sensor", "20m", "16Mi", replicas=1, image=IMAGES[1], edge=EdgeHints(min_battery_percent=20)),
    _template("critical", "250m", "256Mi", replicas=2, image=IMAGES[8], priority=1000),
]
WEIGHTS = [20, 10, 15, 10, 1, 2, 2, 1, 8, 5, 10, 3, 4, 4, 3, 2, 3, 2, 6, 0.2, 3, 4, 3, 1]


def _pod(template: dict[str, Any], name: str, owner: str | None, node_name: str = "") -> Pod:
    requests = {k: template[k] for k in ("cpu", "memory") if template[k] is not None}
    ports = [{"containerPort": 80, "hostPort": template["host_port"]}] if template.get("host_port") else []
    container = msgspec.convert({"name": "main", "image": template["image"], "ports": ports}, Container)
    container = msgspec.structs.replace(container, resources=ResourceRequirements(requests=requests))
    refs = [OwnerReference(kind="ReplicaSet", name=owner, uid=f"uid-{owner}", controller=True)] if owner else []
    selector = template.get("selector", {})
    return Pod(metadata=ObjectMeta(name=name, namespace="default", owner_references=refs),
               spec=PodSpec(containers=[container], runtime=template.get("runtime", "oci"),
                            scheduling_policy=template.get("policy", ""), node_selector=dict(selector),
                            tolerations=list(template.get("tolerations", [])), edge=template.get("edge"),
                            priority=template.get("priority", 0), node_name=node_name))


def make_pods(count: int, rng: random.Random, prefix: str) -> list[Pod]:
    """Pods in arrival order: Deployment replicas come in runs, bare pods (replicas=1) alone."""
    pods: list[Pod] = []
    group = 0
    while len(pods) < count:
        template = rng.choices(TEMPLATES, WEIGHTS)[0]
        group += 1
        replicas = template["replicas"]
        owner = f"{prefix}{template['name']}-{group}" if replicas > 1 else None
        for k in range(min(replicas, count - len(pods))):
            pods.append(_pod(template, f"{prefix}{template['name']}-{group}-{k}", owner))
    return pods


def existing_pods(nodes: list[Node], rng: random.Random) -> list[Pod]:
    """About two running pods per online node, so the fleet starts partly full."""
    light = [t for t in TEMPLATES if t["name"] in ("web", "api", "reader", "proxy", "batch", "gateway")]
    out = []
    for node in nodes:
        for k in range(rng.randint(0, 4)):
            template = rng.choice(light)
            out.append(_pod(template, f"old-{node.metadata.name}-{k}", f"old-{template['name']}",
                            node.metadata.name))
    return out


def bound_copies(pods: list[Pod], decisions: list[Decision]) -> list[Pod]:
    by_key = {(p.metadata.namespace, p.metadata.name): p for p in pods}
    out = []
    for decision in decisions:
        if isinstance(decision, Binding | Preemption):
            pod = by_key[decision.pod_key]
            out.append(msgspec.structs.replace(pod, spec=msgspec.structs.replace(pod.spec, node_name=decision.node)))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def run(nodes_count: int, pods_count: int, round_size: int, baseline_pods: int, baseline_budget_s: float,
        seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.perf_counter()
    nodes = make_fleet(nodes_count, rng)
    bound = existing_pods(nodes, rng)
    pods = make_pods(pods_count, rng, "p-")
    t0 = time.perf_counter()
    initial = ClusterSnapshot.build(nodes, bound)
    build_s = time.perf_counter() - t0

    snapshot, round_ms, update_ms, outcomes = initial, [], [], Counter[str]()
    for start in range(0, len(pods), round_size):
        chunk = pods[start:start + round_size]
        t0 = time.perf_counter()
        decisions = schedule(snapshot, chunk, "BestFit")
        round_ms.append((time.perf_counter() - t0) * 1000)
        outcomes.update(type(d).__name__ for d in decisions)
        t0 = time.perf_counter()
        snapshot = snapshot.with_pods(bound_copies(chunk, decisions))
        update_ms.append((time.perf_counter() - t0) * 1000)
    schedule_s = sum(round_ms) / 1000

    # Baseline: the reference loop on an evenly spaced sample of the same pods, in small rounds
    # from the same starting snapshot, stopped once its time budget is spent.
    step = max(1, len(pods) // baseline_pods)
    sample = pods[::step][:baseline_pods]
    snapshot, done, reference_s, agree = initial, 0, 0.0, True
    for start in range(0, len(sample), 25):
        chunk = sample[start:start + 25]
        t0 = time.perf_counter()
        expected = schedule_reference(snapshot, chunk, "BestFit")
        reference_s += time.perf_counter() - t0
        agree = agree and schedule(snapshot, chunk, "BestFit") == expected
        done += len(chunk)
        snapshot = snapshot.with_pods(bound_copies(chunk, expected))
        if reference_s > baseline_budget_s:
            break
    pods_per_s = len(pods) / schedule_s
    baseline = done / reference_s
    return {
        "pods_per_s": round(pods_per_s, 1), "baseline_pods_per_s": round(baseline, 2),
        "speedup": round(pods_per_s / baseline, 1), "p99_round_ms": round(percentile(round_ms, 99), 2),
        "p50_round_ms": round(percentile(round_ms, 50), 2), "round_size": round_size,
        "nodes": nodes_count, "pods": len(pods), "existing_pods": len(bound),
        "decisions": dict(outcomes), "snapshot_build_s": round(build_s, 2),
        "p99_snapshot_update_ms": round(percentile(update_ms, 99), 2),
        "baseline_sample_pods": done, "baseline_agrees": agree,
        "total_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--round", type=int, default=1000, help="pods per schedule() call")
    parser.add_argument("--baseline-pods", type=int, default=500)
    parser.add_argument("--baseline-budget-s", type=float, default=60.0,
                        help="stop the reference loop after this long (huge fleets)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.pods < 1 or args.round < 1:
        parser.error("--nodes, --pods and --round must be at least 1")
    result = run(args.nodes, args.pods, args.round, args.baseline_pods, args.baseline_budget_s, args.seed)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
