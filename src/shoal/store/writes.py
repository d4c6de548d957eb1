"""Planning one write against committed state: checks, store-owned metadata, the event it makes.

Shared by every backend so that they agree on the rules: uid, creationTimestamp, generation and
resourceVersion are the store's; ``generateName`` picks a free name; ``generation`` grows only
when ``spec`` changes; an update that changes nothing makes no revision. Pure: the current state
is a lookup function, the clock and the random source are parameters, nothing here does I/O.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from shoal.model import BY_KIND, DEFAULT_NAMESPACE, KindInfo, Object, ObjectMeta
from shoal.store.protocol import AlreadyExists, Conflict, EventType, Invalid, NotFound

Key = tuple[str, str, str]  # (kind, namespace, name)
Lookup = Callable[[Key], Object | None]
Clock = Callable[[], datetime]

_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_GENERATE_ATTEMPTS = 32
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write: the event type, the object's key, its new (or last) state, the state
    before it (for selector transitions) and the revision it was given."""

    type: EventType
    key: Key
    object: Object
    prev: Object | None
    revision: int


def kind_info(kind: str) -> KindInfo:
    info = BY_KIND.get(kind)
    if info is None:
        known = ", ".join(sorted(BY_KIND))
        raise Invalid(f'unknown kind "{kind}"; known kinds: {known}')
    return info


def meta_of(obj: Object) -> ObjectMeta:
    meta = getattr(obj, "metadata", None)
    if not isinstance(meta, ObjectMeta):
        raise Invalid(f"{type(obj).__name__} has no metadata; only top-level kinds can be stored")
    return meta


def scoped_namespace(kind: str, namespace: str) -> str:
    """The namespace a key uses: "" for cluster-scoped kinds, ``default`` when a namespaced one has none."""
    if not kind_info(kind).namespaced:
        return ""
    return namespace or DEFAULT_NAMESPACE


def request_key(kind: str, namespace: str, name: str) -> Key:
    """The key a get/delete addresses (the namespace is ignored for cluster-scoped kinds)."""
    return kind, scoped_namespace(kind, namespace), name


def namespace_filter(kind: str | None, namespace: str | None) -> str | None:
    """The namespace a list/watch filters on: None (all) for "" or for cluster-scoped kinds."""
    if kind is not None and not kind_info(kind).namespaced:
        return None
    return namespace or None


def key_of(obj: Object) -> Key:
    kind = type(obj).__name__
    meta = meta_of(obj)
    return kind, scoped_namespace(kind, meta.namespace), meta.name


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def system_clock() -> datetime:
    return datetime.now(UTC)


def _with_meta(obj: Object, meta: ObjectMeta) -> Object:
    return msgspec.structs.replace(obj, metadata=meta)


def _comparable(obj: Object) -> bytes:
    """The encoding of ``obj`` without the parts an unchanged re-write may legitimately differ in."""
    meta = meta_of(obj)
    fields = [msgspec.structs.replace(entry, time="") for entry in meta.managed_fields]
    bare = msgspec.structs.replace(meta, resource_version="", generation=0, managed_fields=fields)
    return _encode(_with_meta(obj, bare))


def _spec_bytes(obj: Object) -> bytes | None:
    spec: Any = getattr(obj, "spec", None)
    return None if spec is None else _encode(spec)


class WritePlanner:
    """Turns requests into ``Change``s against a lookup of committed (plus in-batch) state."""

    def __init__(self, clock: Clock = system_clock, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()

    def _free_name(self, kind: str, namespace: str, prefix: str, current: Lookup) -> str:
        for _ in range(_GENERATE_ATTEMPTS):
            name = prefix + "".join(self._rng.choices(_NAME_ALPHABET, k=5))
            if current((kind, namespace, name)) is None:
                return name
        raise AlreadyExists(f'{kind} names starting "{prefix}" are exhausted in namespace "{namespace}"; '
                            "use a longer generateName")

    def create(self, obj: Object, current: Lookup, revision: int) -> Change:
        kind = type(obj).__name__
        meta = meta_of(obj)
        namespace = scoped_namespace(kind, meta.namespace)
        name = meta.name
        if not name:
            if not meta.generate_name:
                raise Invalid(f"{kind}: metadata.name is required; "
                              "set metadata.name or metadata.generateName")
            name = self._free_name(kind, namespace, meta.generate_name, current)
        key = (kind, namespace, name)
        if current(key) is not None:
            where = f' in namespace "{namespace}"' if namespace else ""
            raise AlreadyExists(f'{kind} "{name}" already exists{where}')
        stamped = msgspec.structs.replace(
            meta, name=name, namespace=namespace, uid=str(uuid.uuid4()),
            creation_timestamp=rfc3339(self._clock()), generation=1, resource_version=str(revision))
        return Change(EventType.ADDED, key, _with_meta(obj, stamped), None, revision)

    def update(self, obj: Object, current: Lookup, revision: int) -> Change | Object:
        """A ``Change``, or the stored object itself when the update changes nothing."""
        kind = type(obj).__name__
        meta = meta_of(obj)
        if not meta.name:
            raise Invalid(f"{kind}: metadata.name is required to update an object")
        key = key_of(obj)
        stored = current(key)
        if stored is None:
            raise NotFound(missing(key))
        old = meta_of(stored)
        if meta.resource_version and meta.resource_version != old.resource_version:
            raise Conflict(f'{kind} "{key[2]}" was modified (resourceVersion {old.resource_version}, '
                           f"you sent {meta.resource_version}); read it again and retry")
        if meta.uid and meta.uid != old.uid:
            raise Conflict(f'{kind} "{key[2]}" has uid {old.uid}, not {meta.uid}: '
                           "it was deleted and re-created")
        generation = old.generation
        if _spec_bytes(obj) != _spec_bytes(stored):
            generation += 1
        candidate = _with_meta(obj, msgspec.structs.replace(
            meta, namespace=key[1], uid=old.uid, creation_timestamp=old.creation_timestamp,
            generation=generation, resource_version=old.resource_version))
        if _comparable(candidate) == _comparable(stored):
            return stored
        final_meta = msgspec.structs.replace(meta_of(candidate), resource_version=str(revision))
        final = _with_meta(candidate, final_meta)
        return Change(EventType.MODIFIED, key, final, stored, revision)

    def delete(self, key: Key, resource_version: str, current: Lookup, revision: int) -> Change:
        stored = current(key)
        if stored is None:
            raise NotFound(missing(key))
        old = meta_of(stored)
        if resource_version and resource_version != old.resource_version:
            raise Conflict(f'{key[0]} "{key[2]}" was modified (resourceVersion {old.resource_version}, '
                           f"you sent {resource_version}); read it again and retry")
        last = _with_meta(stored, msgspec.structs.replace(old, resource_version=str(revision)))
        return Change(EventType.DELETED, key, last, stored, revision)


def missing(key: Key) -> str:
    kind, namespace, name = key
    where = f' in namespace "{namespace}"' if namespace else ""
    return f'{kind} "{name}" not found{where}'
