"""The SQLite writer thread: the only code that touches the database file.

One thread owns the connection. At start it opens the file (WAL, exclusive lock so a second
server cannot share it), creates the schema and loads the committed state. Then it takes
every queued write at once (up to ``batch_size``), checks each against committed state plus the
earlier writes of the same batch, gives the successful ones consecutive revisions, writes the
objects and events rows and commits once; only then are the results handed back to the event
loop. It never touches the in-memory core or a future itself: ``deliver`` does that on the loop.

Secrets: rows of kind Secret are sealed by ``RowCodec`` (AES-256-GCM) when the writer has a keyring.
Plain Secret rows left by an older shoal are sealed at open; ``rekey`` ops re-seal every Secret row
under a new primary key (``reseal``). Neither the file nor its WAL then holds a Secret in plain text.

Durability: WAL with ``synchronous=NORMAL`` (the default here) writes every commit into the WAL
file before the commit returns, so an acknowledged write survives ``kill -9`` of the server;
it may lose the last commits on power loss. ``synchronous="FULL"`` also fsyncs every commit.
"""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shoal.model import Object
from shoal.store.keyring import Keyring
from shoal.store.memory import LoggedEvent
from shoal.store.protocol import EventType, StoreError, Unavailable, WatchEvent
from shoal.store.reseal import Resealed, reseal
from shoal.store.secretcodec import RowCodec, kind_decoders
from shoal.store.writes import Change, Key, WritePlanner

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    rev INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, ns, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (rev INTEGER PRIMARY KEY, type TEXT NOT NULL, kind TEXT NOT NULL,
    ns TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, prev_labels BLOB);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_Row = tuple[Object, bytes, int]  # an object row to write: the object, its encoding, its revision
_encode = msgspec.json.Encoder().encode
_labels_decoder = msgspec.json.Decoder(dict[str, str])


@dataclass(slots=True)
class WriteOp:
    """One queued request; ``outcome`` is filled by the writer (a Change, the unchanged stored
    object, an error, or the revision compacted through)."""

    action: str  # create | update | delete | compact | rekey
    obj: Object | None = None
    key: Key = ("", "", "")
    resource_version: str = ""
    keep: int = 0
    keyring: Keyring | None = None  # rekey: the ring whose primary seals every Secret from now on
    token: Any = None  # the caller's future; opaque here
    outcome: Change | Object | StoreError | int | Resealed | None = field(default=None)


@dataclass(frozen=True, slots=True)
class Loaded:
    objects: list[tuple[Key, Object]]
    events: list[LoggedEvent]
    revision: int
    sealed: Resealed | None = None  # plain Secrets found at open and sealed


class SqliteWriter:
    """State owned by the writer thread: the connection and the committed objects it checks against."""

    def __init__(self, path: str, *, synchronous: str, event_log: int, batch_size: int,
                 planner: WritePlanner, keyring: Keyring | None = None) -> None:
        self.path = path
        self.queue: queue.SimpleQueue[WriteOp | None] = queue.SimpleQueue()
        self._synchronous = synchronous
        self._event_log = event_log
        self._batch_size = batch_size
        self._planner = planner
        self._committed: dict[Key, Object] = {}
        self._revision = 0
        self._compacted = 0  # every event row with rev <= this is gone from the table
        self._db: sqlite3.Connection | None = None
        self._codec = RowCodec(keyring, kind_decoders())

    # --- open -----------------------------------------------------------------------------
    def open(self) -> Loaded:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open store database {self.path}: {exc}; "
                              "check that its directory exists and is writable") from None
        try:
            return self._prepare(db)
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise Unavailable(f"store database {self.path} is in use by another process "
                                  "(another shoal server?); stop it or use another path") from None
            raise Unavailable(f"cannot use store database {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise Unavailable(f"{self.path} is not a usable shoal store database ({exc}); "
                              "move it away or point the server at another path") from None
        except BaseException:
            db.close()
            raise

    def _prepare(self, db: sqlite3.Connection) -> Loaded:
        db.execute("PRAGMA busy_timeout = 0")
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise Unavailable(f"store database {self.path} cannot use WAL mode (got {mode})")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        db.execute("BEGIN IMMEDIATE")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.execute("ROLLBACK")
            raise Unavailable(f"store database {self.path} has schema {version}, written by a newer shoal; "
                              f"this one understands {SCHEMA_VERSION}")
        for statement in _SCHEMA.strip().split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
        self._db = db
        loaded = self._load(db)
        if self._codec.keyring is not None and self._codec.plain_seen:
            sealed = reseal(db, self._codec, self._committed, self.path)
            loaded = Loaded(loaded.objects, loaded.events, loaded.revision, sealed)
        return loaded

    def _load(self, db: sqlite3.Connection) -> Loaded:
        objects: list[tuple[Key, Object]] = []
        for kind, ns, name, data in db.execute("SELECT kind, ns, name, data FROM objects"):
            key = (kind, ns, name)
            obj = self._codec.decode(key, data, f'{self.path}: {kind} "{name}" in namespace "{ns}"')
            objects.append((key, obj))
            self._committed[key] = obj
        events: list[LoggedEvent] = []
        rows = db.execute("SELECT rev, type, kind, ns, name, data, prev_labels FROM events "
                          "ORDER BY rev DESC LIMIT ?", (self._event_log,)).fetchall()
        for rev, type_, kind, ns, name, data, prev in reversed(rows):
            obj = self._codec.decode((kind, ns, name), data, f"{self.path}: event {rev}")
            labels = None if prev is None else _labels_decoder.decode(prev)
            events.append(LoggedEvent(WatchEvent(EventType(type_), obj, rev), (kind, ns, name), labels))
        stored = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        newest = db.execute("SELECT MAX(rev), MIN(rev) FROM events").fetchone()
        self._revision = max(stored[0] if stored else 0, newest[0] or 0)
        self._compacted = (newest[1] - 1) if newest[1] is not None else self._revision
        return Loaded(objects, events, self._revision)

    # --- run --------------------------------------------------------------------------------
    def run(self, deliver: Callable[[list[WriteOp]], None]) -> None:
        """Process batches until a ``None`` arrives; ``deliver`` hands each batch to the loop."""
        running = True
        while running:
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    running = False
                    break
                batch.append(item)
            for segment in _segments(batch):
                try:
                    if segment[0].action == "rekey":
                        self._rekey(segment[0])
                    else:
                        self._commit_batch(segment)
                except Exception as exc:  # never leave callers waiting on a dead writer
                    failure = Unavailable(f"store writer failed: {exc!r}; nothing in this batch was saved")
                    for op in segment:
                        op.outcome = failure
            deliver(batch)

    def _rekey(self, op: WriteOp) -> None:
        """Seal every Secret row with ``op.keyring``'s primary key; then only that key is needed."""
        assert self._db is not None and op.keyring is not None
        codec = RowCodec(op.keyring, kind_decoders())
        try:
            done = reseal(self._db, codec, self._committed, self.path)
        except StoreError as exc:
            op.outcome = exc
            return
        except sqlite3.Error as exc:
            op.outcome = Unavailable(f"store database {self.path}: re-encrypting Secrets failed: {exc}; "
                                     "the Secrets are still sealed with their previous keys")
            return
        kept = op.keyring.only({op.keyring.primary})
        self._codec = RowCodec(kept, kind_decoders())
        dropped = tuple(k for k in op.keyring.ids if k != op.keyring.primary)
        op.outcome = Resealed(done.objects, done.events, done.key_id, dropped)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _plan(self, op: WriteOp, current: Callable[[Key], Object | None], revision: int) -> Change | Object:
        if op.action == "create" and op.obj is not None:
            return self._planner.create(op.obj, current, revision)
        if op.action == "update" and op.obj is not None:
            return self._planner.update(op.obj, current, revision)
        return self._planner.delete(op.key, op.resource_version, current, revision)

    def _commit_batch(self, batch: list[WriteOp]) -> None:
        assert self._db is not None
        overlay: dict[Key, _Row | None] = {}

        def current(key: Key) -> Object | None:
            if key in overlay:
                entry = overlay[key]
                return None if entry is None else entry[0]
            return self._committed.get(key)

        revision = self._revision
        events: list[tuple[int, str, str, str, str, bytes, bytes | None]] = []
        compact_through = self._compacted
        for op in batch:
            if op.action == "compact":
                compact_through = max(compact_through, revision - max(op.keep, 0))
                op.outcome = compact_through
                continue
            try:
                result = self._plan(op, current, revision + 1)
            except StoreError as exc:
                op.outcome = exc
                continue
            except Exception as exc:  # a bug or an unencodable object must not kill the writer
                op.outcome = StoreError(f"write failed: {exc!r}")
                continue
            op.outcome = result
            if isinstance(result, Change):
                revision = result.revision
                data = self._codec.encode(result.key, result.object)
                prev = None
                if result.type is EventType.MODIFIED and result.prev is not None:
                    prev = _encode(getattr(result.prev, "metadata").labels)  # noqa: B009
                kind, ns, name = result.key
                events.append((revision, result.type.value, kind, ns, name, data, prev))
                deleted = result.type is EventType.DELETED
                overlay[result.key] = None if deleted else (result.object, data, revision)
        if revision - compact_through > self._event_log:
            compact_through = revision - self._event_log
        try:
            self._write(events, overlay, revision, compact_through)
        except sqlite3.Error as exc:
            failure = Unavailable(f"store database {self.path} write failed: {exc}; nothing was saved")
            for op in batch:
                if not isinstance(op.outcome, StoreError):
                    op.outcome = failure
            return
        for key, entry in overlay.items():
            if entry is None:
                self._committed.pop(key, None)
            else:
                self._committed[key] = entry[0]
        self._revision = revision
        self._compacted = compact_through

    def _write(self, events: list[tuple[int, str, str, str, str, bytes, bytes | None]],
               overlay: dict[Key, _Row | None], revision: int, compact_through: int) -> None:
        assert self._db is not None
        db = self._db
        if not events and compact_through == self._compacted:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            # Each statement hands the GIL back and forth with the event loop: issue only the needed ones.
            if events:
                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", events)
            rows = [(*key, entry[2], entry[1]) for key, entry in overlay.items() if entry is not None]
            if rows:
                db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", rows)
            gone = [key for key, entry in overlay.items() if entry is None]
            if gone:
                db.executemany("DELETE FROM objects WHERE kind = ? AND ns = ? AND name = ?", gone)
            if compact_through > self._compacted:
                # The newest revision is max(events.rev) while events remain; record it for when none do.
                db.execute("INSERT OR REPLACE INTO meta VALUES ('revision', ?)", (revision,))
                db.execute("DELETE FROM events WHERE rev <= ?", (compact_through,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise



def _segments(batch: list[WriteOp]) -> list[list[WriteOp]]:
    """The batch split so that each ``rekey`` runs alone, after the writes queued before it."""
    segments: list[list[WriteOp]] = []
    for op in batch:
        if op.action == "rekey" or not segments or segments[-1][0].action == "rekey":
            segments.append([op])
        else:
            segments[-1].append(op)
    return segments
