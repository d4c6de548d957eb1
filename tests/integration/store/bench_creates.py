"""Throughput of SqliteStore creates from concurrent asyncio tasks (a script, not a test).

Run: ``.venv/bin/python tests/integration/store/bench_creates.py [--total N] [--tasks T]``.
Prints creates per second; the target is at least 5,000/s from 50 tasks on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from shoal.model import Container, ObjectMeta, Pod, PodSpec
from shoal.store import SqliteStore


async def run(total: int, tasks: int, synchronous: str, event_log: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "bench.db", synchronous=synchronous, event_log=event_log)
        spec = PodSpec(containers=[Container(name="app", image="registry.local/app:1")])
        per_task = total // tasks

        async def worker(index: int) -> None:
            for n in range(per_task):
                meta = ObjectMeta(name=f"pod-{index}-{n}", labels={"app": "bench", "worker": str(index)})
                await store.create(Pod(metadata=meta, spec=spec))

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for index in range(tasks):
                group.create_task(worker(index))
        elapsed = time.perf_counter() - started
        await store.close()
        return per_task * tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--total", type=int, default=50_000)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--synchronous", default="NORMAL")
    parser.add_argument("--event-log", type=int, default=100_000)
    args = parser.parse_args()
    rate = asyncio.run(run(args.total, args.tasks, args.synchronous, args.event_log))
    print(f"{rate:,.0f} creates/s ({args.total} creates, {args.tasks} tasks, synchronous={args.synchronous})")


if __name__ == "__main__":
    main()
