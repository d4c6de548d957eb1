"""The informer: a local cache of the watched kinds, kept current by one store watch.

``Cache`` holds objects per kind plus three indexes (uid → key, owner uid → dependents, node name
→ pods) so that reconcile functions read without touching the store. ``Informer`` lists the kinds
(dependents before owners, so a cached pod's owner is never older than the pod), then follows
a single all-kinds watch in revision order; on ``Gone`` (410) it re-lists and keeps going.
Events are applied idempotently by revision, which also lets the runner write its own results
through the cache before the watch echoes them. Only the store is touched here, and only to read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from shoal.controllers.actions import Key, key_of, meta
from shoal.model import Object, Pod, Selector

log = logging.getLogger(__name__)

Handler = Callable[[str, Object | None, Object | None], None]  # kind, old, new


class ListResultLike(Protocol):
    @property
    def items(self) -> list[Object]: ...
    @property
    def revision(self) -> int: ...


class WatchEventLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def object(self) -> Object: ...
    @property
    def revision(self) -> int: ...


class ObjectStore(Protocol):
    """The part of ``shoal.store.Store`` the controllers use (the server injects the real one)."""

    async def get(self, kind: str, namespace: str, name: str) -> Object: ...

    async def list(self, kind: str, namespace: str | None = None,
                   selector: Selector | None = None) -> ListResultLike: ...

    async def create(self, obj: Object) -> Object: ...

    async def update(self, obj: Object) -> Object: ...

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Object: ...

    def watch(self, kind: str | None, namespace: str | None = None, from_revision: int = 0,
              selector: Selector | None = None) -> AsyncIterator[WatchEventLike]: ...


def error_code(exc: BaseException) -> int | None:
    """The HTTP-style ``code`` a store error carries (404, 409, 410), without importing the store."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _revision(obj: Object) -> int:
    try:
        return int(meta(obj).resource_version or 0)
    except ValueError:
        return 0


def controller_uid(obj: Object) -> str:
    for ref in meta(obj).owner_references:
        if ref.controller:
            return ref.uid
    return ""


class Cache:
    """Read side for reconcile functions. Mutated only by the ``Informer``."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Object]] = {}
        self._by_uid: dict[str, Key] = {}
        self._by_owner: dict[str, set[Key]] = {}
        self._by_node: dict[str, set[Key]] = {}

    def get(self, key: Key) -> Object | None:
        return self._objects.get(key[0], {}).get(key)

    def objects(self, kind: str, namespace: str | None = None) -> list[Object]:
        objs = self._objects.get(kind, {})
        if namespace is None:
            return list(objs.values())
        return [o for k, o in objs.items() if k[1] == namespace]

    def keys(self, kind: str) -> list[Key]:
        return list(self._objects.get(kind, {}))

    def by_uid(self, uid: str) -> Object | None:
        key = self._by_uid.get(uid)
        return None if key is None else self.get(key)

    def owned_by(self, uid: str, kind: str | None = None) -> list[Object]:
        """Objects whose controller owner reference points at ``uid``."""
        out = []
        for key in sorted(self._by_owner.get(uid, ())):
            if kind is None or key[0] == kind:
                obj = self.get(key)
                if obj is not None:
                    out.append(obj)
        return out

    def pods_on_node(self, node: str) -> list[Pod]:
        out = []
        for key in sorted(self._by_node.get(node, ())):
            obj = self.get(key)
            if isinstance(obj, Pod):
                out.append(obj)
        return out

    def __len__(self) -> int:
        return sum(len(v) for v in self._objects.values())

    # mutation (Informer only)

    def _index(self, key: Key, obj: Object, add: bool) -> None:
        uid = meta(obj).uid
        owner = controller_uid(obj)
        node = obj.spec.node_name if isinstance(obj, Pod) else ""
        if add:
            if uid:
                self._by_uid[uid] = key
            if owner:
                self._by_owner.setdefault(owner, set()).add(key)
            if node:
                self._by_node.setdefault(node, set()).add(key)
            return
        if uid and self._by_uid.get(uid) == key:
            del self._by_uid[uid]
        for index, value in ((self._by_owner, owner), (self._by_node, node)):
            if value and value in index:
                index[value].discard(key)
                if not index[value]:
                    del index[value]

    def put(self, obj: Object) -> Object | None:
        key = key_of(obj)
        old = self.get(key)
        if old is not None:
            self._index(key, old, add=False)
        self._objects.setdefault(key[0], {})[key] = obj
        self._index(key, obj, add=True)
        return old

    def remove(self, key: Key) -> Object | None:
        old = self._objects.get(key[0], {}).pop(key, None)
        if old is not None:
            self._index(key, old, add=False)
        return old


class Informer:
    """Keeps a ``Cache`` of ``kinds`` current and tells handlers about every change."""

    def __init__(self, store: ObjectStore, kinds: Sequence[str], *, retry_max: float = 5.0) -> None:
        self.store = store
        self.kinds = tuple(dict.fromkeys(kinds))
        self.cache = Cache()
        self.synced = asyncio.Event()
        self.relists = 0
        self._handlers: list[Handler] = []
        self._retry_max = retry_max

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def _notify(self, kind: str, old: Object | None, new: Object | None) -> None:
        for handler in self._handlers:
            handler(kind, old, new)

    def observe(self, event_type: str, obj: Object, revision: int) -> None:
        """Apply one change (from the watch, or written through by the runner) unless it is stale."""
        kind = type(obj).__name__
        if kind not in self.kinds:
            return
        key = key_of(obj)
        cached = self.cache.get(key)
        if cached is not None and _revision(cached) >= revision:
            return
        if event_type == "DELETED":
            if cached is None:
                return
            self.cache.remove(key)
            self._notify(kind, cached, None)
            return
        self.cache.put(obj)
        self._notify(kind, cached, obj)

    async def _relist(self) -> int:
        listed: dict[str, list[Object]] = {}
        first = 0
        for kind in self.kinds:
            result = await self.store.list(kind)
            listed[kind] = result.items
            first = result.revision if not first else min(first, result.revision)
        for kind, items in listed.items():
            seen = set()
            for obj in items:
                key = key_of(obj)
                seen.add(key)
                old = self.cache.put(obj)
                self._notify(kind, old, obj)
            for key in set(self.cache.keys(kind)) - seen:
                gone = self.cache.remove(key)
                self._notify(kind, gone, None)
        self.relists += 1
        return first

    async def run(self) -> None:
        """List, then watch until cancelled; re-list on ``Gone`` and after store errors."""
        delay = 0.05
        while True:
            try:
                revision = await self._relist()
                self.synced.set()
                stream = self.store.watch(None, from_revision=revision)
                try:
                    async for event in stream:
                        self.observe(str(event.type), event.object, event.revision)
                        delay = 0.05
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
                log.info("informer: watch ended; re-listing in %.2fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if error_code(exc) == 410:
                    log.info("informer: watch expired (%s); re-listing", exc)
                    continue
                log.warning("informer: store error %r; retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
