"""The server's secrets key file (``DATA_DIR/secrets.key``, 0600) and key rotation.

Opening: the key file is created on first start; a data dir whose store holds encrypted Secrets but
has lost its key file refuses to start, naming the file. Rotation adds a new primary key to the file,
has the store re-encrypt every Secret with it, then drops the old keys from the file (the order
means a crash at any point leaves a file that opens every row). It owns the file only: encryption is
the store's, the HTTP route is ``api.secretkeys``. It must never log or return key material.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.pki import write_private
from shoal.store import Keyring, KeyringError, SecretKeyMissing, SqliteStore

__all__ = ["KEY_FILE", "SecretKeys", "load_keyring", "open_sealed_store"]

KEY_FILE = "secrets.key"
log = logging.getLogger("shoal.server")
Clock = Callable[[], dt.datetime]


def load_keyring(path: Path) -> Keyring | None:
    """The keyring in ``path``, or None when there is no such file."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyringError(f"cannot read the secrets key file {path}: {exc.strerror}") from None
    return Keyring.parse(text, str(path))


def _save(path: Path, ring: Keyring) -> None:
    try:
        write_private(path, ring.dump())
    except OSError as exc:
        raise KeyringError(f"cannot write the secrets key file {path}: {exc.strerror}; "
                           "check the data dir's disk space and permissions") from None


async def open_sealed_store(data_dir: Path, clock: Clock) -> tuple[SqliteStore, SecretKeys]:
    """Open ``DATA_DIR/state.db`` with the key file, creating the file when this is a first start."""
    path = data_dir / KEY_FILE
    database = data_dir / "state.db"
    ring = load_keyring(path)
    created = ring is None
    if ring is None:
        ring = Keyring.generate(clock(), str(path))
        _save(path, ring)  # before any row is sealed with it
    try:
        store = await SqliteStore.open(database, keyring=ring)
    except SecretKeyMissing as exc:
        if not created:
            raise
        path.unlink(missing_ok=True)  # the new key opens nothing: do not leave it looking like the real one
        raise SecretKeyMissing(
            f"the secrets key file {path} is missing, but {database} holds Secrets encrypted with key "
            f"\"{', '.join(exc.key_ids)}\"; restore {path} from your backup (it was created on the "
            "server's first start) and start again", exc.key_ids) from None
    if store.sealed_at_open is not None:
        log.warning("%s held Secrets in plain text (written by an older shoal): encrypted %d Secret rows and %d "
                    "event rows with key %s from %s", database, store.sealed_at_open.objects,
                    store.sealed_at_open.events, store.sealed_at_open.key_id, path)
    return store, SecretKeys(path, ring, store, clock)


class SecretKeys:
    """The key file of a running server: ``rotate()`` is what ``shoal secrets rotate-key`` asks for."""

    def __init__(self, path: Path, ring: Keyring, store: SqliteStore, clock: Clock) -> None:
        self.path = path
        self.ring = ring
        self._store = store
        self._clock = clock
        self._lock = asyncio.Lock()

    async def rotate(self) -> dict[str, Any]:
        """Add a new primary key, re-encrypt every Secret with it, then drop the keys nothing uses."""
        async with self._lock:
            grown = self.ring.rotated(self._clock())
            _save(self.path, grown)
            self.ring = grown
            done = await self._store.rotate_secret_key(grown)
            kept = grown.only({done.key_id})
            _save(self.path, kept)
            self.ring = kept
            log.info("secrets key rotated: %d Secret rows and %d event rows now use key %s; dropped %s",
                     done.objects, done.events, done.key_id, ", ".join(done.dropped) or "no keys")
            return {"keyId": done.key_id, "secrets": done.objects, "events": done.events,
                    "droppedKeys": list(done.dropped), "keyFile": str(self.path)}
