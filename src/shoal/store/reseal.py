"""Re-encrypting every Secret row under the keyring's primary key, then scrubbing the file.

Run by the writer thread only (it owns the connection): at open, when plain Secrets from an older
shoal are found, and on ``rotate_secret_key``. It rewrites the Secret rows of the objects and events
tables in one transaction, then ``VACUUM``s (so no freed page keeps an old plain or old-key copy)
and truncates the WAL. It must not change any object, revision or event order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from shoal.model import Object
from shoal.store.secretcodec import SEALED_KIND, RowCodec

__all__ = ["Resealed", "reseal"]

Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Resealed:
    """What a re-encryption did: rows rewritten and the key they are all sealed with now."""

    objects: int
    events: int
    key_id: str
    dropped: tuple[str, ...] = ()  # keys no row uses any more


def reseal(db: sqlite3.Connection, codec: RowCodec, committed: Mapping[Key, Object], path: str) -> Resealed:
    """Seal every Secret row (objects and events) with ``codec``'s primary key, in one transaction."""
    assert codec.keyring is not None
    objects = [(codec.encode(key, obj), *key) for key, obj in committed.items() if key[0] == SEALED_KIND]
    events: list[tuple[bytes, int]] = []
    for rev, ns, name, data in db.execute("SELECT rev, ns, name, data FROM events WHERE kind = ?", (SEALED_KIND,)):
        key = (SEALED_KIND, ns, name)
        plain = codec.open(key, data, f"{path}: event {rev}")
        events.append((codec.seal(key, plain), rev))
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("UPDATE objects SET data = ? WHERE kind = ? AND ns = ? AND name = ?", objects)
        db.executemany("UPDATE events SET data = ? WHERE rev = ?", events)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    scrub(db)
    return Resealed(len(objects), len(events), codec.keyring.primary)


def scrub(db: sqlite3.Connection) -> None:
    """Rebuild the file so freed pages keep no old row, and empty the WAL."""
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
