"""A tiny dict-backed async store for the controller tests (the real fake lives in shoal.store).

Writes are planned by ``shoal.store.writes.WritePlanner`` so uid, resourceVersion, generation and
CAS behave like every real backend; watches are asyncio queues with an event-log replay. Tests
can expire every watch (410 Gone), count writes per kind, and inject failures.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from shoal.model import Object, Selector
from shoal.store.protocol import EventType, Gone, ListResult, NotFound, WatchEvent
from shoal.store.writes import Change, Key, WritePlanner, key_of, meta_of, scoped_namespace


class MemStore:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._planner = WritePlanner(clock)
        self._objects: dict[Key, Object] = {}
        self._log: list[WatchEvent] = []
        self._revision = 1
        self._compacted = 0
        self._watchers: set[asyncio.Queue[WatchEvent | Exception]] = set()
        self.writes: Counter[tuple[str, str]] = Counter()  # (operation, kind)
        self.fail: dict[tuple[str, str], list[Exception]] = {}  # (operation, kind) → errors to raise next

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def _lookup(self, key: Key) -> Object | None:
        return self._objects.get(key)

    def _maybe_fail(self, operation: str, kind: str) -> None:
        errors = self.fail.get((operation, kind))
        if errors:
            raise errors.pop(0)

    def _commit(self, change: Change) -> Object:
        self._revision = change.revision
        if change.type is EventType.DELETED:
            self._objects.pop(change.key, None)
        else:
            self._objects[change.key] = change.object
        event = WatchEvent(change.type, change.object, change.revision)
        self._log.append(event)
        for queue in self._watchers:
            queue.put_nowait(event)
        self.writes[(change.type.value, change.key[0])] += 1
        return change.object

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        obj = self._objects.get((kind, scoped_namespace(kind, namespace), name))
        if obj is None:
            raise NotFound(f'{kind} "{name}" not found')
        return obj

    async def list(self, kind: str, namespace: str | None = None, selector: Selector | None = None) -> ListResult:
        items = [o for k, o in sorted(self._objects.items(), key=lambda kv: kv[0])
                 if k[0] == kind and (namespace is None or k[1] == namespace)
                 and (selector is None or selector.matches(meta_of(o).labels))]
        return ListResult(items, self._revision)

    async def create(self, obj: Object) -> Object:
        self._maybe_fail("create", type(obj).__name__)
        return self._commit(self._planner.create(obj, self._lookup, self._revision + 1))

    async def update(self, obj: Object) -> Object:
        self._maybe_fail("update", type(obj).__name__)
        result = self._planner.update(obj, self._lookup, self._revision + 1)
        return self._commit(result) if isinstance(result, Change) else result

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Object:
        self._maybe_fail("delete", kind)
        key = (kind, scoped_namespace(kind, namespace), name)
        return self._commit(self._planner.delete(key, resource_version, self._lookup, self._revision + 1))

    def expire_watches(self) -> None:
        """Every open watch ends with Gone and old revisions are compacted away."""
        self._compacted = self._revision
        for queue in self._watchers:
            queue.put_nowait(Gone("watch expired; re-list"))

    async def watch(self, kind: str | None, namespace: str | None = None, from_revision: int = 0,
                    selector: Selector | None = None) -> AsyncIterator[WatchEvent]:
        if from_revision and from_revision < self._compacted:
            raise Gone(f"revision {from_revision} was compacted (oldest is {self._compacted})")
        queue: asyncio.Queue[WatchEvent | Exception] = asyncio.Queue()
        if from_revision:
            for event in self._log:
                if event.revision > from_revision:
                    queue.put_nowait(event)
        self._watchers.add(queue)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if kind is not None and key_of(item.object)[0] != kind:
                    continue
                if namespace is not None and key_of(item.object)[1] != namespace:
                    continue
                yield item
        finally:
            self._watchers.discard(queue)

    async def close(self) -> None:
        return None

    def objects(self, kind: str) -> builtins.list[Object]:
        return [o for k, o in sorted(self._objects.items(), key=lambda kv: kv[0]) if k[0] == kind]
