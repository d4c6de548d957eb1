"""Throughput of the server's scheduling loop, committer included (a script, not a test).

Run: ``.venv/bin/python tests/integration/scheduling/bench_commit.py [--nodes N] [--pods P] [--store sqlite|fake]
[--schedulers S]``. Creates ``P`` pending pods on ``N`` Online nodes, then starts ``S`` scheduling
loops and prints how many pods per second end up bound (and checks that no node is overcommitted).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path

from shoal.model import Container, Node, NodePhase, NodeStatus, ObjectMeta, Pod, PodSpec
from shoal.model.pod import ResourceRequirements
from shoal.server.scheduling import SchedulerLoop
from shoal.store import FakeStore, SqliteStore
from shoal.store.protocol import Store


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _fill(store: Store, nodes: int, pods: int) -> None:
    for i in range(nodes):
        await store.create(Node(metadata=ObjectMeta(name=f"node-{i:05d}"), status=NodeStatus(
            phase=NodePhase.ONLINE, allocatable={"cpu": "4", "memory": "8Gi", "pods": 110})))
    spec = PodSpec(containers=[Container(name="app", image="app:1", resources=ResourceRequirements(
        requests={"cpu": "100m", "memory": "64Mi"}))])
    await asyncio.gather(*(store.create(Pod(metadata=ObjectMeta(name=f"pod-{i:06d}", namespace="default"),
                                            spec=spec)) for i in range(pods)))


async def _bound(store: Store) -> int:
    listed = await store.list("Pod")
    return sum(1 for pod in listed.items if isinstance(pod, Pod) and pod.spec.node_name)


async def _overcommitted(store: Store) -> int:
    """Nodes holding more than their 40 pods of 100m (4 CPUs)."""
    per_node: dict[str, int] = {}
    for pod in (await store.list("Pod")).items:
        if isinstance(pod, Pod) and pod.spec.node_name:
            per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1
    return sum(1 for count in per_node.values() if count > 40)


async def run(kind: str, nodes: int, pods: int, schedulers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store: Store = FakeStore() if kind == "fake" else await SqliteStore.open(Path(tmp) / "bench.db")
        try:
            await _fill(store, nodes, pods)
            stop = asyncio.Event()
            loops = [SchedulerLoop(store, _now) for _ in range(schedulers)]
            started = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                for loop in loops:
                    group.create_task(loop.run(stop))
                deadline = started + 120
                while await _bound(store) < min(pods, 40 * nodes) and time.perf_counter() < deadline:
                    await asyncio.sleep(0.005)
                elapsed = time.perf_counter() - started
                stop.set()
            bound = await _bound(store)
            print(f"{kind}: {bound}/{pods} pods bound on {nodes} nodes by {schedulers} loop(s) in "
                  f"{elapsed:.3f}s = {bound / elapsed:,.0f} pods/s; "
                  f"{await _overcommitted(store)} node(s) overcommitted")
            return bound / elapsed
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--store", choices=("sqlite", "fake"), default="sqlite")
    parser.add_argument("--schedulers", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(run(args.store, args.nodes, args.pods, args.schedulers))


if __name__ == "__main__":
    main()
