"""``FakeStore``: the Store protocol in memory, for unit tests of everything above the store.

It follows exactly the rules of the durable backends (it shares their write planner and
in-memory core) but keeps nothing after the process ends. It must not be used as a server's
store: nothing it acknowledges is durable.
"""

from __future__ import annotations

import random

from shoal.model import Object
from shoal.store.memory import DEFAULT_EVENT_LOG, DEFAULT_WATCH_BUFFER, MemoryCore
from shoal.store.reads import CoreReads
from shoal.store.writes import Change, Clock, WritePlanner, kind_info, request_key, system_clock


class FakeStore(CoreReads):
    """An in-memory Store; every write is applied at once on the calling (event loop) thread."""

    def __init__(self, *, event_log: int = DEFAULT_EVENT_LOG, watch_buffer: int = DEFAULT_WATCH_BUFFER,
                 clock: Clock = system_clock, rng: random.Random | None = None) -> None:
        self._core = MemoryCore(event_log, watch_buffer)
        self._planner = WritePlanner(clock, rng)
        self._closed = False

    def _commit(self, change: Change) -> Object:
        self._core.apply(change)
        return change.object

    async def create(self, obj: Object) -> Object:
        self._check_open()
        kind_info(type(obj).__name__)
        return self._commit(self._planner.create(obj, self._core.index.get, self._core.revision + 1))

    async def update(self, obj: Object) -> Object:
        self._check_open()
        kind_info(type(obj).__name__)
        result = self._planner.update(obj, self._core.index.get, self._core.revision + 1)
        return self._commit(result) if isinstance(result, Change) else result

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Object:
        self._check_open()
        key = request_key(kind, namespace, name)
        return self._commit(self._planner.delete(key, resource_version, self._core.index.get,
                                                 self._core.revision + 1))

    async def compact(self, keep: int) -> None:
        """Forget all but the last ``keep`` events; watches from before them get ``Gone``."""
        self._check_open()
        self._core.compact_through(self._core.revision - max(keep, 0))

    async def close(self) -> None:
        self._closed = True
        self._core.close()
