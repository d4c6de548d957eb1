"""WorkQueue: de-duplication, per-key serialization, delayed adds and backoff."""

from __future__ import annotations

import asyncio

from shoal.controllers import WorkQueue

from .helpers import run


def test_key_added_twice_before_processing_runs_once() -> None:
    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        assert await queue.get() == "a"
        assert await queue.get() == "b"
        assert len(queue) == 0

    run(main)


def test_key_added_while_processing_waits_for_done() -> None:
    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")
        assert len(queue) == 0  # not handed to a second worker while held
        second = asyncio.create_task(queue.get())
        await asyncio.sleep(0.01)
        assert not second.done()
        queue.done(key)
        assert await asyncio.wait_for(second, 1) == "a"

    run(main)


def test_workers_never_share_a_key() -> None:
    async def main() -> None:
        queue: WorkQueue[int] = WorkQueue()
        active: set[int] = set()
        clashes = 0
        handled = 0

        async def worker() -> None:
            nonlocal clashes, handled
            while True:
                key = await queue.get()
                if key in active:
                    clashes += 1
                active.add(key)
                await asyncio.sleep(0.001)
                active.discard(key)
                handled += 1
                queue.done(key)

        workers = [asyncio.create_task(worker()) for _ in range(4)]
        for _ in range(50):
            for key in [0, 1, 2] * 3:
                queue.add(key)
            await asyncio.sleep(0.0005)
        await asyncio.sleep(0.05)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        assert clashes == 0
        assert 3 <= handled <= 150  # 450 adds, de-duplicated; every key ran
        assert len(queue) == 0

    run(main)


def test_add_after_keeps_earliest_and_fires() -> None:
    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("a", 10)
        queue.add_after("a", 0.02)
        queue.add_after("a", 5)
        assert queue.pending_timers == 1
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        assert queue.pending_timers == 0
        queue.close()
        queue.add_after("b", 0.01)
        queue.add("c")
        assert len(queue) == 0 and queue.pending_timers == 0

    run(main)


def test_backoff_doubles_from_5ms_caps_at_30s_and_resets() -> None:
    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue()
        delays = [queue.backoff("k") for _ in range(16)]
        assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
        assert delays[-1] == 30.0 and max(delays) == 30.0
        queue.forget("k")
        assert queue.backoff("k") == 0.005
        queue.close()

    run(main)
