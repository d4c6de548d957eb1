"""``SqliteStore``: the default durable Store — one SQLite file, one writer thread, reads from memory.

Writes are queued to the writer thread (``sqlite_writer``), which commits them in batches; when a
batch is committed its results come back to the event loop, which applies them to the
in-memory core (index, event log, watchers) and only then resolves each caller. So a write is
acknowledged only after it is in the database, and a read right after it sees it. Reads are
served from memory and never wait for the writer. Given a ``keyring``, Secrets are encrypted in the
file (``secretcodec``) while memory, reads and watches keep seeing them in plain. This module must
not touch the database file itself: only the writer thread does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable
from pathlib import Path

from shoal.model import Object
from shoal.store.keyring import Keyring
from shoal.store.memory import DEFAULT_EVENT_LOG, DEFAULT_WATCH_BUFFER, MemoryCore
from shoal.store.protocol import StoreError, Unavailable
from shoal.store.reads import CoreReads
from shoal.store.reseal import Resealed
from shoal.store.sqlite_writer import Loaded, SqliteWriter, WriteOp
from shoal.store.writes import Change, Clock, WritePlanner, kind_info, request_key, system_clock

DEFAULT_BATCH = 500
_SYNC_MODES = ("NORMAL", "FULL", "EXTRA")


class SqliteStore(CoreReads):
    """The SQLite backend. Create it with ``await SqliteStore.open(path)``; ``await close()`` it."""

    def __init__(self, core: MemoryCore, writer: SqliteWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._core = core
        self._writer = writer
        self._loop = loop
        self._closed = False
        self._stopped: asyncio.Future[None] = loop.create_future()
        self.sealed_at_open: Resealed | None = None  # plain Secrets of an older shoal, sealed at open

    @classmethod
    async def open(cls, path: str | Path, *, event_log: int = DEFAULT_EVENT_LOG,
                   watch_buffer: int = DEFAULT_WATCH_BUFFER, synchronous: str = "NORMAL",
                   batch_size: int = DEFAULT_BATCH, clock: Clock = system_clock,
                   rng: random.Random | None = None, keyring: Keyring | None = None) -> SqliteStore:
        """Open (or create) the store at ``path`` and load it. ``synchronous`` is SQLite's setting:
        NORMAL survives a killed process, FULL also survives power loss at some write cost.
        With ``keyring``, Secrets are sealed with its primary key (plain ones already in the file
        are sealed now); without one, a file holding sealed Secrets raises ``SecretKeyMissing``."""
        if synchronous.upper() not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC_MODES)}, got {synchronous!r}")
        if event_log < 1 or batch_size < 1:
            raise ValueError("event_log and batch_size must be at least 1")
        loop = asyncio.get_running_loop()
        writer = SqliteWriter(str(path), synchronous=synchronous.upper(), event_log=event_log,
                              batch_size=batch_size, planner=WritePlanner(clock, rng), keyring=keyring)
        ready: asyncio.Future[Loaded] = loop.create_future()
        core = MemoryCore(event_log, watch_buffer)
        store = cls(core, writer, loop)
        thread = threading.Thread(target=store._writer_main, args=(ready,), name="shoal-store-writer",
                                  daemon=True)
        thread.start()
        try:
            loaded = await ready
        except BaseException:  # failed or cancelled: make sure the writer thread ends and unlocks the file
            writer.queue.put(None)
            raise
        core.load(loaded.objects, loaded.events, loaded.revision)
        store.sealed_at_open = loaded.sealed
        return store

    # --- writer thread side -----------------------------------------------------------------
    def _writer_main(self, ready: asyncio.Future[Loaded]) -> None:
        try:
            loaded = self._writer.open()
        except BaseException as exc:
            self._post(_fail, ready, exc)
            self._post(_finish, self._stopped)
            return
        self._post(_resolve, ready, loaded)
        try:
            self._writer.run(lambda batch: self._post(self._deliver, batch))
        finally:
            self._writer.close()
            self._post(_finish, self._stopped)

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            self._loop.call_soon_threadsafe(callback, *args)

    # --- event loop side ------------------------------------------------------------------
    def _deliver(self, batch: list[WriteOp]) -> None:
        """Apply a committed batch to memory in order, then resolve its callers."""
        for op in batch:
            outcome = op.outcome
            future: asyncio.Future[object] = op.token
            if isinstance(outcome, Change):
                self._core.apply(outcome)
                value: object = outcome.object
            elif isinstance(outcome, int):
                self._core.compact_through(outcome)
                value = None
            else:
                value = outcome
            if future.done():
                continue
            if isinstance(value, StoreError):
                future.set_exception(value)
            else:
                future.set_result(value)

    async def _submit(self, op: WriteOp) -> object:
        self._check_open()
        future: asyncio.Future[object] = self._loop.create_future()
        op.token = future
        self._writer.queue.put(op)
        return await future

    async def create(self, obj: Object) -> Object:
        kind_info(type(obj).__name__)
        result = await self._submit(WriteOp("create", obj=obj))
        assert isinstance(result, Object)
        return result

    async def update(self, obj: Object) -> Object:
        kind_info(type(obj).__name__)
        result = await self._submit(WriteOp("update", obj=obj))
        assert isinstance(result, Object)
        return result

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Object:
        key = request_key(kind, namespace, name)
        result = await self._submit(WriteOp("delete", key=key, resource_version=resource_version))
        assert isinstance(result, Object)
        return result

    async def compact(self, keep: int) -> None:
        """Drop all but the last ``keep`` events from the log (memory and disk); watches from
        before them get ``Gone``. The writer also does this by itself past ``event_log``."""
        await self._submit(WriteOp("compact", keep=keep))

    async def rotate_secret_key(self, keyring: Keyring) -> Resealed:
        """Re-encrypt every Secret row (objects and events) with ``keyring``'s primary key, after the
        writes queued before this call; afterwards the store needs only that key. The caller must
        have saved ``keyring`` first. Blocks other writes while it runs (a ``VACUUM`` included)."""
        result = await self._submit(WriteOp("rekey", keyring=keyring))
        assert isinstance(result, Resealed)
        return result

    async def close(self) -> None:
        """Finish the queued writes, close the database and end every watch."""
        if not self._closed:
            self._closed = True
            self._writer.queue.put(None)
        await asyncio.shield(self._stopped)
        self._core.close()


def _resolve(future: asyncio.Future[Loaded], value: Loaded) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Loaded], exc: BaseException) -> None:
    if not future.done():
        error = exc if isinstance(exc, StoreError) else Unavailable(f"store failed to open: {exc!r}")
        future.set_exception(error)


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
