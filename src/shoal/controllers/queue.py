"""The work queue: de-duplicating, per-key serialized, with delayed adds and per-key backoff.

A key added while it waits runs once; a key added while a worker holds it runs again after
``done`` — never on two workers at once. ``add_after`` keeps only the earliest pending timer per
key. ``backoff`` grows 5 ms, 10 ms, … up to 30 s per key until ``forget``. Idle workers block
on an ``asyncio.Event``, so an idle queue costs nothing. No store access and no clock reads
beyond the event loop's timers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

BACKOFF_BASE = 0.005
BACKOFF_MAX = 30.0


class WorkQueue(Generic[K]):
    def __init__(self, *, backoff_base: float = BACKOFF_BASE, backoff_max: float = BACKOFF_MAX) -> None:
        self._ready: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._wakeup = asyncio.Event()
        self._base = backoff_base
        self._max = backoff_max
        self._closed = False

    def __len__(self) -> int:
        return len(self._ready)

    @property
    def pending_timers(self) -> int:
        return len(self._timers)

    def add(self, key: K) -> None:
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.append(key)
            self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= due:
                return
            existing[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key, due))

    def _fire(self, key: K, due: float) -> None:
        entry = self._timers.get(key)
        if entry is not None and entry[0] == due:
            del self._timers[key]
            self.add(key)

    def backoff(self, key: K) -> float:
        """Schedule ``key`` again after its next backoff delay; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self._base * float(2 ** min(failures, 32)), self._max)
        self.add_after(key, delay)
        return delay

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    async def get(self) -> K:
        while not self._ready:
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._ready.popleft()
        if self._ready:
            self._wakeup.set()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._ready.append(key)
            self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
