"""Garbage collection: objects whose controller owner no longer exists are deleted.

``reconcile_orphan`` is pure: an object, the set of owner kinds this collector tracks and a
lookup of live uids decide whether it goes. Only owners of a tracked kind count — an owner of a
kind nobody watches cannot be judged missing. Deletion is background cascading: the owner is
already gone from the store; its dependents are deleted afterwards, one key at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from shoal.controllers.actions import Actions, Key, delete_of, meta
from shoal.controllers.cache import Cache
from shoal.controllers.runner import Enqueue, KeyMapper, no_trigger, own_key
from shoal.model import Object

OWNER_KINDS = ("Deployment",)
DEPENDENT_KINDS = ("Pod", "DeploymentRevision")


def reconcile_orphan(obj: Object, owner_kinds: Collection[str], owner_alive: Callable[[str], bool]) -> Actions:
    """Delete ``obj`` when its controller owner (of a tracked kind) no longer exists."""
    m = meta(obj)
    for ref in m.owner_references:
        if ref.controller and ref.kind in owner_kinds and not owner_alive(ref.uid):
            return Actions((delete_of(obj),))
    return Actions()


class GarbageCollector:
    name = "garbage-collector"
    kind = "Pod"

    def __init__(self, owner_kinds: Collection[str] = OWNER_KINDS,
                 dependent_kinds: Collection[str] = DEPENDENT_KINDS) -> None:
        self._owner_kinds = tuple(owner_kinds)
        self._dependent_kinds = tuple(dependent_kinds)

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        mappers: dict[str, KeyMapper] = {kind: own_key for kind in self._dependent_kinds}
        for kind in self._owner_kinds:
            mappers[kind] = self._dependents
        return mappers

    def _dependents(self, owner: Object, cache: Cache) -> list[Key]:
        if cache.by_uid(meta(owner).uid) is not None:
            return []  # the owner still exists (a status write, a scale): nothing to collect
        keys = []
        for obj in cache.owned_by(meta(owner).uid):
            key = (type(obj).__name__, meta(obj).namespace, meta(obj).name)
            if key[0] in self._dependent_kinds:
                keys.append(key)
        return keys

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        obj = cache.get(key)
        if obj is None:
            return Actions()

        def owner_alive(uid: str) -> bool:
            owner = cache.by_uid(uid)
            return owner is not None and type(owner).__name__ in self._owner_kinds

        return reconcile_orphan(obj, self._owner_kinds, owner_alive)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)
