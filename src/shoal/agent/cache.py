"""The agent's local SQLite cache (DIR/agent.db, mode 0600): desired pods, per-container restart
tracks, and the data of the ConfigMaps/Secrets those pods reference.

It is what lets a node that lost the server, or rebooted without it, keep running and restarting
its workloads: pods are written here before any container is created and deleted only after
their containers are gone. Each call is one short transaction on a WAL database. It must not talk
to the server or the runtime.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from shoal.agent.restarts import RestartTrack

__all__ = ["PodCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pods (uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
                                 body BLOB NOT NULL, start_time TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS tracks (pod_uid TEXT NOT NULL, container TEXT NOT NULL, body BLOB NOT NULL,
                                   PRIMARY KEY (pod_uid, container));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                                    body BLOB NOT NULL, PRIMARY KEY (kind, namespace, name));
"""
_track_decoder = msgspec.json.Decoder(RestartTrack)
_config_decoder = msgspec.json.Decoder(dict[str, bytes])


class PodCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.path.chmod(0o600)

    def close(self) -> None:
        self._db.close()

    # ----- pods ----------------------------------------------------------------------------------

    def put_pod(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        self._db.execute(
            "INSERT INTO pods (uid, namespace, name, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(uid) DO UPDATE SET body = excluded.body",
            (meta["uid"], meta.get("namespace") or "default", meta["name"], msgspec.json.encode(pod)))

    def delete_pod(self, uid: str) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM pods WHERE uid = ?", (uid,))
            self._db.execute("DELETE FROM tracks WHERE pod_uid = ?", (uid,))

    def pods(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT body FROM pods ORDER BY namespace, name").fetchall()
        return [msgspec.json.decode(row[0]) for row in rows]

    def start_time(self, uid: str) -> str:
        row = self._db.execute("SELECT start_time FROM pods WHERE uid = ?", (uid,)).fetchone()
        return str(row[0]) if row else ""

    def set_start_time(self, uid: str, value: str) -> None:
        self._db.execute("UPDATE pods SET start_time = ? WHERE uid = ?", (value, uid))

    # ----- restart tracks ------------------------------------------------------------------------

    def tracks(self, uid: str) -> dict[str, RestartTrack]:
        rows = self._db.execute("SELECT container, body FROM tracks WHERE pod_uid = ?", (uid,)).fetchall()
        return {str(name): _track_decoder.decode(body) for name, body in rows}

    def put_track(self, uid: str, container: str, track: RestartTrack) -> None:
        self._db.execute("INSERT OR REPLACE INTO tracks (pod_uid, container, body) VALUES (?, ?, ?)",
                         (uid, container, msgspec.json.encode(track)))

    # ----- ConfigMap/Secret data (decoded values; the file is 0600) -----------------------------

    def configs(self) -> list[tuple[str, str, str, dict[str, bytes]]]:
        """Every cached object as (kind, namespace, name, {key: value})."""
        rows = self._db.execute("SELECT kind, namespace, name, body FROM configs").fetchall()
        return [(str(k), str(ns), str(n), _config_decoder.decode(body)) for k, ns, n, body in rows]

    def put_config(self, kind: str, namespace: str, name: str, data: dict[str, bytes]) -> None:
        self._db.execute("INSERT OR REPLACE INTO configs (kind, namespace, name, body) VALUES (?, ?, ?, ?)",
                         (kind, namespace, name, msgspec.json.encode(data)))

    def delete_config(self, kind: str, namespace: str, name: str) -> None:
        self._db.execute("DELETE FROM configs WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name))

    # ----- small facts ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
