"""What a reconcile function asks for: the Actions data a controller returns and the runner applies.

Reconcile functions are pure and never write; they return ``Actions`` — an ordered tuple of
``Create``/``Update``/``Delete``/``EmitEvent`` steps plus a ``Result`` saying when to look again.
The runner applies the steps in order and stops at the first failure (so an event recorded
after a write only appears when the write succeeded). This module must not do any I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from shoal.model import Object, ObjectMeta, ObjectReference

Key = tuple[str, str, str]  # (kind, namespace, name); namespace "" for cluster-scoped kinds


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class Create:
    obj: Object


@dataclass(frozen=True, slots=True)
class Update:
    """Replace ``obj``; compare-and-swap on its ``metadata.resourceVersion``."""

    obj: Object


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    namespace: str
    name: str
    resource_version: str = ""  # precondition; empty = unconditional


@dataclass(frozen=True, slots=True)
class EmitEvent:
    involved: ObjectReference
    reason: str
    message: str
    type: EventType = EventType.NORMAL


@dataclass(frozen=True, slots=True)
class Result:
    requeue_after: float | None = None  # seconds; None = only when something changes


Action = Create | Update | Delete | EmitEvent


@dataclass(frozen=True, slots=True)
class Actions:
    steps: tuple[Action, ...] = ()
    result: Result = field(default_factory=Result)

    @property
    def writes(self) -> tuple[Create | Update | Delete, ...]:
        return tuple(s for s in self.steps if not isinstance(s, EmitEvent))

    @property
    def events(self) -> tuple[EmitEvent, ...]:
        return tuple(s for s in self.steps if isinstance(s, EmitEvent))


def sooner(a: float | None, b: float | None) -> float | None:
    """The earlier of two optional requeue delays."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def combine(parts: Iterable[Actions]) -> Actions:
    steps: list[Action] = []
    requeue: float | None = None
    for part in parts:
        steps.extend(part.steps)
        requeue = sooner(requeue, part.result.requeue_after)
    return Actions(tuple(steps), Result(requeue))


def meta(obj: Object) -> ObjectMeta:
    value = getattr(obj, "metadata", None)
    if not isinstance(value, ObjectMeta):
        raise TypeError(f"{type(obj).__name__} has no metadata")
    return value


def key_of(obj: Object) -> Key:
    m = meta(obj)
    return type(obj).__name__, m.namespace, m.name


def ref_of(obj: Object) -> ObjectReference:
    m = meta(obj)
    return ObjectReference(kind=type(obj).__name__, namespace=m.namespace, name=m.name, uid=m.uid,
                           api_version=str(getattr(obj, "api_version", "")), resource_version=m.resource_version)


def delete_of(obj: Object, *, precondition: bool = True) -> Delete:
    m = meta(obj)
    return Delete(type(obj).__name__, m.namespace, m.name, m.resource_version if precondition else "")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp as written by the store and controllers, or None when empty/bad."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
