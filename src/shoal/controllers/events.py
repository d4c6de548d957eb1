"""The events recorder: turns ``EmitEvent`` steps into Event objects, aggregating repeats.

An event is named ``<object>.<10 hex of sha256(kind, reason, message)>``, so the same thing
happening to the same object again bumps ``count`` and ``lastTimestamp`` on one Event instead
of creating a new one. Events of cluster-scoped objects (nodes) go to the ``default`` namespace.
The recorder remembers the last Event it wrote (bounded LRU) to update it without a read; it
falls back to a store read on a 404/409. Recording is best effort: a failure is logged, never
raised, so a reconcile is not retried because of an event.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

import msgspec

from shoal.controllers.actions import EmitEvent, rfc3339
from shoal.controllers.cache import ObjectStore, error_code
from shoal.model import DEFAULT_NAMESPACE, Event, ObjectMeta

log = logging.getLogger(__name__)

_MAX_NAME = 253


def event_name(emit: EmitEvent) -> str:
    digest = hashlib.sha256(
        f"{emit.involved.kind}\x00{emit.reason}\x00{emit.message}".encode()).hexdigest()[:10]
    return f"{emit.involved.name[:_MAX_NAME - 11]}.{digest}"


def event_namespace(emit: EmitEvent) -> str:
    return emit.involved.namespace or DEFAULT_NAMESPACE


class EventRecorder:
    def __init__(self, store: ObjectStore, clock: Callable[[], datetime], *, source: str = "controllers",
                 remember: int = 4096) -> None:
        self._store = store
        self._clock = clock
        self._source = source
        self._remember = remember
        self._recent: OrderedDict[tuple[str, str], Event] = OrderedDict()
        self.failures = 0

    def _keep(self, event: Event) -> None:
        key = (event.metadata.namespace, event.metadata.name)
        self._recent[key] = event
        self._recent.move_to_end(key)
        while len(self._recent) > self._remember:
            self._recent.popitem(last=False)

    async def record(self, emit: EmitEvent) -> Event | None:
        try:
            event = await self._record(emit)
        except Exception as exc:
            self.failures += 1
            log.warning("could not record event %s %s on %s/%s: %r", emit.reason, emit.message,
                        emit.involved.kind, emit.involved.name, exc)
            return None
        self._keep(event)
        return event

    async def _bump(self, previous: Event, now: str) -> Event:
        bumped = msgspec.structs.replace(previous, count=previous.count + 1, last_timestamp=now)
        return await self._store.update(bumped)  # type: ignore[return-value]

    async def _record(self, emit: EmitEvent) -> Event:
        now = rfc3339(self._clock())
        namespace, name = event_namespace(emit), event_name(emit)
        previous = self._recent.get((namespace, name))
        if previous is not None:
            try:
                return await self._bump(previous, now)
            except Exception as exc:
                if error_code(exc) != 409 and error_code(exc) != 404:
                    raise
                if error_code(exc) == 409:
                    fresh = await self._store.get("Event", namespace, name)
                    if isinstance(fresh, Event):
                        return await self._bump(fresh, now)
        event = Event(
            metadata=ObjectMeta(name=name, namespace=namespace), involved_object=emit.involved,
            reason=emit.reason, message=emit.message, type=str(emit.type), count=1, source=self._source,
            first_timestamp=now, last_timestamp=now)
        try:
            created = await self._store.create(event)
        except Exception as exc:
            if error_code(exc) != 409:
                raise
            existing = await self._store.get("Event", namespace, name)
            if not isinstance(existing, Event):
                raise
            return await self._bump(existing, now)
        if not isinstance(created, Event):
            raise TypeError(f"store returned {type(created).__name__} for an Event")
        return created
