"""Watch streams: store watch events as NDJSON lines, with bookmarks on idle streams.

Each event is encoded once however many watchers follow it (a small cache keyed by revision),
and a watcher that has several events queued gets them in one write: with a hundred watchers
the server writes batches, not a line per event per watcher.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator

import msgspec

from shoal.api.errors import ApiError
from shoal.api.fieldselector import FieldSelector
from shoal.model import KindInfo, Selector, Status, StatusDetails
from shoal.store.protocol import Gone, Store, WatchEvent

BOOKMARK_SECONDS = 30.0
_encode = msgspec.json.Encoder().encode
_MAX_BATCH = 512


class LineCache:
    """revision → encoded NDJSON line, bounded; shared by every watcher of one server."""

    def __init__(self, size: int = 4096) -> None:
        self._lines: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._size = size

    def line(self, event: WatchEvent) -> bytes:
        key = (event.revision, event.type.value)
        cached = self._lines.get(key)
        if cached is None:
            cached = b'{"type":"' + event.type.value.encode() + b'","object":' + _encode(event.object) + b"}\n"
            self._lines[key] = cached
            if len(self._lines) > self._size:
                self._lines.popitem(last=False)
        return cached


def _error_line(code: int, reason: str, message: str) -> bytes:
    status = Status(code=code, reason=reason, message=message, details=StatusDetails())
    return b'{"type":"ERROR","object":' + _encode(status) + b"}\n"


def _bookmark(kind: str, revision: int) -> bytes:
    return (b'{"type":"BOOKMARK","object":{"kind":"' + kind.encode() + b'","apiVersion":"shoal/v1",'
            b'"metadata":{"resourceVersion":"' + str(revision).encode() + b'"}}}\n')


async def stream(store: Store, cache: LineCache, info: KindInfo, namespace: str | None, from_revision: int,
                 selector: Selector | None, fields: FieldSelector | None = None,
                 bookmark_seconds: float = BOOKMARK_SECONDS) -> AsyncIterator[bytes]:
    """NDJSON chunks for a watch; ends with an ERROR line on 410 and when the store closes."""
    try:
        events = store.watch(info.kind, namespace, from_revision, selector)
    except Gone as exc:
        yield _gone(exc)
        return
    last_revision = from_revision or store.revision
    try:
        while True:
            try:
                batch = await asyncio.wait_for(events.next_batch(_MAX_BATCH), timeout=bookmark_seconds)
            except TimeoutError:
                yield _bookmark(info.kind, last_revision)
                continue
            except StopAsyncIteration:
                return
            except Gone as exc:
                yield _gone(exc)
                return
            last_revision = batch[-1].revision
            lines = [cache.line(e) for e in batch if fields is None or fields.matches(e.object)]
            if lines:
                yield b"".join(lines)
    finally:
        await events.aclose()


def _gone(exc: Gone) -> bytes:
    return _error_line(410, "Expired", str(exc) or "the resourceVersion is too old; list again and watch from "
                       "its resourceVersion")


def parse_revision(text: str) -> int:
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f'resourceVersion "{text}" is not a number') from None
    if value < 0:
        raise ApiError(400, "resourceVersion must not be negative")
    return value
