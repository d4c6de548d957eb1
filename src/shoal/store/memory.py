"""The in-memory core every backend shares: the committed objects, the event log and the watch hub.

``MemoryCore`` holds the index of committed objects keyed (kind, namespace, name), a ring of
the last N events for watch replay, and a hub that fans each new event out to watchers through
bounded per-watcher queues. It only ever runs on the event loop thread and never blocks: a
watcher that falls too far behind is ended with ``Gone`` (it re-lists), writers never wait for
readers. It does no I/O and knows nothing about durability — a backend commits first, then
calls ``apply``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from shoal.model import Object, Selector
from shoal.store.protocol import EventType, Gone, Invalid, Unavailable, WatchEvent
from shoal.store.writes import Change, Key, meta_of

DEFAULT_EVENT_LOG = 100_000
DEFAULT_WATCH_BUFFER = 10_000


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A WatchEvent with what a selector watcher needs: the key and the labels before the change."""

    event: WatchEvent
    key: Key
    prev_labels: Mapping[str, str] | None


def logged(change: Change) -> LoggedEvent:
    modified = change.prev is not None and change.type is EventType.MODIFIED
    prev = meta_of(change.prev).labels if modified and change.prev is not None else None
    return LoggedEvent(WatchEvent(change.type, change.object, change.revision), change.key, prev)


class ObjectIndex:
    """Committed objects by kind → namespace → name."""

    def __init__(self) -> None:
        self._kinds: dict[str, dict[str, dict[str, Object]]] = {}

    def get(self, key: Key) -> Object | None:
        kind, namespace, name = key
        return self._kinds.get(kind, {}).get(namespace, {}).get(name)

    def put(self, key: Key, obj: Object) -> None:
        kind, namespace, name = key
        self._kinds.setdefault(kind, {}).setdefault(namespace, {})[name] = obj

    def remove(self, key: Key) -> None:
        kind, namespace, name = key
        names = self._kinds.get(kind, {}).get(namespace)
        if names is not None:
            names.pop(name, None)
            if not names:
                del self._kinds[kind][namespace]

    def list(self, kind: str, namespace: str | None, selector: Selector | None) -> list[Object]:
        spaces = self._kinds.get(kind, {})
        chosen = sorted(spaces) if namespace is None else [namespace]
        out: list[Object] = []
        for space in chosen:
            names = spaces.get(space, {})
            for name in sorted(names):
                obj = names[name]
                if selector is None or selector.matches(meta_of(obj).labels):
                    out.append(obj)
        return out

    def items(self) -> Iterator[tuple[Key, Object]]:
        for kind, spaces in self._kinds.items():
            for namespace, names in spaces.items():
                for name, obj in names.items():
                    yield (kind, namespace, name), obj

    def __len__(self) -> int:
        return sum(len(names) for spaces in self._kinds.values() for names in spaces.values())


class _Subscriber:
    __slots__ = ("after", "closed", "error", "kind", "limit", "namespace", "pending", "replay", "selector",
                 "wakeup")

    def __init__(self, kind: str | None, namespace: str | None, selector: Selector | None,
                 limit: int, after: int = 0) -> None:
        self.after = after  # only events with a higher revision are delivered
        self.kind = kind
        self.namespace = namespace
        self.selector = None if selector is None or selector.empty else selector
        self.limit = limit
        self.replay: deque[WatchEvent] = deque()
        self.pending: deque[WatchEvent] = deque()
        self.error: Gone | None = None
        self.closed = False
        self.wakeup: asyncio.Future[None] | None = None

    def view(self, entry: LoggedEvent) -> WatchEvent | None:
        """What this watcher sees of ``entry``: nothing, the event, or a selector transition."""
        kind, namespace, _ = entry.key
        if entry.event.revision <= self.after:
            return None
        if self.kind is not None and kind != self.kind:
            return None
        if self.namespace is not None and namespace != self.namespace:
            return None
        event = entry.event
        if self.selector is None:
            return event
        now = self.selector.matches(meta_of(event.object).labels)
        if event.type is not EventType.MODIFIED:
            return event if now else None
        before = entry.prev_labels is None or self.selector.matches(entry.prev_labels)
        if now and before:
            return event
        if now:
            return WatchEvent(EventType.ADDED, event.object, event.revision)
        if before and entry.prev_labels is not None:
            return WatchEvent(EventType.DELETED, event.object, event.revision)
        return None

    def wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)


class WatchStream:
    """An async iterator over one watcher's events. Ends when the store closes or ``aclose`` is
    called; unsubscribes itself when dropped (a consumer that ``break``s out of ``async for``)."""

    def __init__(self, hub: WatchHub, sub: _Subscriber) -> None:
        self._sub = sub
        self._release = weakref.finalize(self, hub.discard, sub)

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        sub = self._sub
        while True:
            if sub.replay:
                return sub.replay.popleft()
            if sub.pending:
                return sub.pending.popleft()
            if sub.error is not None:
                self._release()
                raise sub.error
            if sub.closed:
                self._release()
                raise StopAsyncIteration
            sub.wakeup = asyncio.get_running_loop().create_future()
            await sub.wakeup

    async def next_batch(self, limit: int = 512) -> list[WatchEvent]:
        """Every event available now, in order (at least one, at most ``limit``); waits for the
        first. Lets a consumer with many watchers write batches instead of one event at a time."""
        sub = self._sub
        while True:
            if sub.replay or sub.pending:
                batch: list[WatchEvent] = []
                while sub.replay and len(batch) < limit:
                    batch.append(sub.replay.popleft())
                while sub.pending and len(batch) < limit:
                    batch.append(sub.pending.popleft())
                return batch
            if sub.error is not None:
                self._release()
                raise sub.error
            if sub.closed:
                self._release()
                raise StopAsyncIteration
            sub.wakeup = asyncio.get_running_loop().create_future()
            await sub.wakeup

    async def aclose(self) -> None:
        self._sub.closed = True
        self._sub.replay.clear()
        self._sub.pending.clear()
        self._release()


class WatchHub:
    """Fans events out to watchers; a watcher whose queue is full is dropped with ``Gone``."""

    def __init__(self, buffer: int = DEFAULT_WATCH_BUFFER) -> None:
        self._buffer = buffer
        self._subs: dict[str | None, set[_Subscriber]] = {}
        self._closed = False

    def subscribe(self, kind: str | None, namespace: str | None, selector: Selector | None,
                  replay: Iterable[LoggedEvent], after: int) -> WatchStream:
        if self._closed:
            raise Unavailable("the store is closed; no new watches")
        sub = _Subscriber(kind, namespace, selector, self._buffer, after)
        for entry in replay:
            event = sub.view(entry)
            if event is not None:
                sub.replay.append(event)
        self._subs.setdefault(kind, set()).add(sub)
        return WatchStream(self, sub)

    def discard(self, sub: _Subscriber) -> None:
        subs = self._subs.get(sub.kind)
        if subs is not None:
            subs.discard(sub)

    def publish(self, entry: LoggedEvent) -> None:
        behind: list[_Subscriber] = []
        for group in (self._subs.get(entry.key[0]), self._subs.get(None)):
            for sub in group or ():
                event = sub.view(entry)
                if event is None:
                    continue
                if len(sub.pending) >= sub.limit:
                    sub.pending.clear()
                    sub.error = Gone(f"watch fell more than {sub.limit} events behind; "
                                     "re-list and watch again")
                    behind.append(sub)
                else:
                    sub.pending.append(event)
                sub.wake()
        for sub in behind:
            self.discard(sub)

    @property
    def watchers(self) -> int:
        return sum(len(group) for group in self._subs.values())

    def close(self) -> None:
        self._closed = True
        for group in self._subs.values():
            for sub in group:
                sub.closed = True
                sub.wake()
        self._subs.clear()


class MemoryCore:
    """Index + event log + hub, applied to in revision order by the backend that owns it."""

    def __init__(self, event_log: int = DEFAULT_EVENT_LOG, watch_buffer: int = DEFAULT_WATCH_BUFFER) -> None:
        if event_log < 1:
            raise ValueError(f"event_log must be at least 1, got {event_log}")
        self.index = ObjectIndex()
        self._log: deque[LoggedEvent] = deque(maxlen=event_log)
        self._hub = WatchHub(watch_buffer)
        self.revision = 0

    def load(self, objects: Iterable[tuple[Key, Object]], events: Iterable[LoggedEvent],
             revision: int) -> None:
        """Fill a fresh core from durable state (events oldest first)."""
        for key, obj in objects:
            self.index.put(key, obj)
        self._log.extend(events)
        self.revision = revision

    def apply(self, change: Change) -> None:
        if change.type is EventType.DELETED:
            self.index.remove(change.key)
        else:
            self.index.put(change.key, change.object)
        entry = logged(change)
        self._log.append(entry)
        self.revision = change.revision
        self._hub.publish(entry)

    @property
    def oldest_revision(self) -> int:
        """The oldest revision a watch can replay from; ``revision + 1`` when the log is empty."""
        return self._log[0].event.revision if self._log else self.revision + 1

    def compact_through(self, revision: int) -> None:
        while self._log and self._log[0].event.revision <= revision:
            self._log.popleft()

    def watch(self, kind: str | None, namespace: str | None, from_revision: int,
              selector: Selector | None) -> WatchStream:
        if from_revision < 0:
            raise Invalid(f"resourceVersion {from_revision} is negative; use 0 to watch from now")
        if 0 < from_revision < self.oldest_revision - 1:
            raise Gone(f"resourceVersion {from_revision} is too old (the oldest kept is "
                       f"{self.oldest_revision}); re-list and watch from the list's resourceVersion")
        replay: list[LoggedEvent] = []
        if from_revision > 0:
            for entry in reversed(self._log):
                if entry.event.revision <= from_revision:
                    break
                replay.append(entry)
            replay.reverse()
        return self._hub.subscribe(kind, namespace, selector, replay, from_revision)

    @property
    def watchers(self) -> int:
        return self._hub.watchers

    def close(self) -> None:
        self._hub.close()
