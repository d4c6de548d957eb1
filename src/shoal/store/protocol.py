"""The Store contract: durable desired state with one global revision and watches.

Every backend (SQLite, etcd, the in-memory fake) implements ``Store``. Objects are model
Structs; the store owns ``metadata.uid``, ``resourceVersion``, ``generation`` and
``creationTimestamp``. Only this package touches a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shoal.model import Object, Selector


class StoreError(Exception):
    """Base of the errors a store raises; each maps to one HTTP status."""

    code = 500
    reason = "InternalError"


class NotFound(StoreError):
    code = 404
    reason = "NotFound"


class AlreadyExists(StoreError):
    code = 409
    reason = "AlreadyExists"


class Conflict(StoreError):
    """The object changed since the caller read it (resourceVersion mismatch)."""

    code = 409
    reason = "Conflict"


class Gone(StoreError):
    """A watch asked for a revision that has been compacted away; re-list and watch again."""

    code = 410
    reason = "Expired"


class Invalid(StoreError):
    """The object cannot be stored as given (unknown kind, no name); the message names the fix."""

    code = 422
    reason = "Invalid"


class Unavailable(StoreError):
    """The store is closed or its database failed; the write was not acknowledged."""

    code = 503
    reason = "ServiceUnavailable"


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: Object
    revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[Object]
    revision: int  # the store revision the list is consistent with


class WatchIterator(Protocol):
    """A watch: iterate it event by event, or take what is ready in batches."""

    def __aiter__(self) -> WatchIterator: ...

    async def __anext__(self) -> WatchEvent: ...

    async def next_batch(self, limit: int = 512) -> list[WatchEvent]:
        """Every event ready now (at least one); ``StopAsyncIteration`` when the store closes."""
        ...

    async def aclose(self) -> None: ...


class Store(Protocol):
    """Durable desired state. ``kind`` is the model kind name ("Pod"); cluster-scoped kinds
    use namespace "". Writes return the stored object with its new ``resourceVersion``."""

    @property
    def revision(self) -> int: ...

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        """The object, or ``NotFound``."""
        ...

    async def list(self, kind: str, namespace: str | None = None,
                   selector: Selector | None = None) -> ListResult:
        """Objects of ``kind`` (in ``namespace``, or all namespaces when None) matching ``selector``."""
        ...

    async def create(self, obj: Object) -> Object:
        """Store a new object; ``AlreadyExists`` if the name is taken. With only
        ``metadata.generateName`` set, the store picks a unique name."""
        ...

    async def update(self, obj: Object) -> Object:
        """Replace an object. When ``obj.metadata.resourceVersion`` is set and differs from the
        stored one → ``Conflict``; empty means unconditional. ``generation`` increases when
        ``spec`` changes. An update that changes nothing returns the stored object as is."""
        ...

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Object:
        """Remove an object and return its last state; ``NotFound``; ``Conflict`` on a
        resourceVersion precondition mismatch."""
        ...

    def watch(self, kind: str | None, namespace: str | None = None, from_revision: int = 0,
              selector: Selector | None = None) -> WatchIterator:
        """Events after ``from_revision`` (0 = from now), replayed from the event log then
        live, in revision order. ``Gone`` when ``from_revision`` was compacted away.
        ``kind=None`` watches every kind."""
        ...

    async def close(self) -> None: ...
