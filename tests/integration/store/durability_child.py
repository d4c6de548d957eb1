"""Child process for the durability test: many concurrent creates, each name printed once acked.

Usage: ``python durability_child.py DB_PATH COUNT STAGGER_SECONDS``. Every create starts after
``index * STAGGER`` seconds so the parent can kill the process while writes are in flight.
"""

from __future__ import annotations

import asyncio
import sys

from shoal.model import ObjectMeta, Pod
from shoal.store import SqliteStore


async def main(path: str, count: int, stagger: float) -> None:
    store = await SqliteStore.open(path)
    print("ready", flush=True)

    async def create(index: int) -> None:
        await asyncio.sleep(index * stagger)
        created = await store.create(Pod(metadata=ObjectMeta(name=f"pod-{index}", labels={"n": str(index)})))
        sys.stdout.write(f"{created.metadata.name} {created.metadata.resource_version}\n")
        sys.stdout.flush()

    async with asyncio.TaskGroup() as group:
        for index in range(count):
            group.create_task(create(index))
    await store.close()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
