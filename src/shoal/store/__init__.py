"""shoal's store: durable desired state with one global revision, an event log and watches.

Backends: ``SqliteStore`` (default, one file) and ``FakeStore`` (in memory, for unit tests);
both implement ``Store`` and share the in-memory core and write rules. Only this package
touches a database; everything else receives a ``Store`` and uses the protocol.
"""

from __future__ import annotations

from pathlib import Path

from shoal.store.fake import FakeStore
from shoal.store.keyring import Keyring, KeyringError
from shoal.store.memory import WatchStream
from shoal.store.protocol import (
    AlreadyExists,
    Conflict,
    EventType,
    Gone,
    Invalid,
    ListResult,
    NotFound,
    Store,
    StoreError,
    Unavailable,
    WatchEvent,
)
from shoal.store.reseal import Resealed
from shoal.store.secretcodec import SecretKeyMissing, SecretUnreadable
from shoal.store.sqlite import SqliteStore

__all__ = [
    "AlreadyExists", "Conflict", "EventType", "FakeStore", "Gone", "Invalid", "Keyring", "KeyringError", "ListResult",
    "NotFound", "Resealed", "SecretKeyMissing", "SecretUnreadable", "SqliteStore", "Store", "StoreError",
    "Unavailable", "WatchEvent", "WatchStream", "open_store",
]


async def open_store(url: str) -> SqliteStore | FakeStore:
    """Open a store from ``sqlite:///path/to/shoal.db``, a plain path, or ``memory://`` (a FakeStore,
    nothing kept)."""
    if url.startswith("memory:"):
        return FakeStore()
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path.startswith("/"):
            raise Invalid(f'store URL "{url}" needs an absolute path, e.g. sqlite:///var/lib/shoal/shoal.db')
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise Invalid(f'store URL scheme "{scheme}" is not supported; use sqlite:///path or a plain path')
    else:
        path = url
    if not path:
        raise Invalid("store path is empty; use sqlite:///path/to/shoal.db or a plain path")
    return await SqliteStore.open(Path(path))
