"""Secrets are encrypted at rest: the SQLite files never hold a Secret's value, in plain or in base64.

Store level (a real SQLite file): sealing, reopening with and without the key, sealing the plain
Secrets of an older database at open, rotation. Server level (a real server process and the CLI):
API reads stay plain, ``shoal secrets rotate-key`` re-encrypts, a restart reads them, and a data dir
that lost its key file refuses to start naming the file.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import RunningServer, start_server, stop_process

from shoal.model import ObjectMeta, Secret
from shoal.store import Keyring, SecretKeyMissing, SqliteStore, Unavailable

NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
PLAIN = "Quokka-Zebra-hunter2-77315-at-rest"
ENCODED = base64.b64encode(PLAIN.encode()).decode()
SECRETS = "/api/v1/namespaces/default/secrets"


def _leaks(directory: Path) -> list[str]:
    """Every state.db file (main, -wal, -shm, journal) holding the value or its base64."""
    found = []
    for path in sorted(directory.glob("state.db*")):
        content = path.read_bytes()
        for needle in (PLAIN, ENCODED):
            if needle.encode() in content:
                found.append(f"{path.name}: {needle}")
    return found


def _stored_key_ids(db_path: Path) -> list[str]:
    """The key id of every stored Secret row (objects and events); fails on a plain row."""
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT data FROM objects WHERE kind = 'Secret' UNION ALL "
                          "SELECT data FROM events WHERE kind = 'Secret'").fetchall()
    finally:
        db.close()
    return [str(json.loads(row[0])["encrypted"]["keyId"]) for row in rows]


async def _password(store: SqliteStore, name: str) -> str:
    secret = await store.get("Secret", "default", name)
    assert isinstance(secret, Secret)
    return secret.data["password"]


def _secret(name: str, value: str = ENCODED) -> Secret:
    return Secret(metadata=ObjectMeta(name=name, namespace="default"), data={"password": value})


# --- store level -------------------------------------------------------------------------------

def test_store_seals_secrets_and_needs_the_key_to_open(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    ring = Keyring.generate(NOW, str(tmp_path / "secrets.key"))

    async def scenario() -> None:
        store = await SqliteStore.open(db, keyring=ring)
        try:
            await store.create(_secret("db-pass"))
            changed = await store.get("Secret", "default", "db-pass")
            assert isinstance(changed, Secret)
            await store.update(Secret(metadata=changed.metadata, data={"password": ENCODED, "x": "eA=="}))
            assert await _password(store, "db-pass") == ENCODED
            assert _leaks(tmp_path) == []  # while the store is open, WAL included
        finally:
            await store.close()
        assert _leaks(tmp_path) == []
        again = await SqliteStore.open(db, keyring=ring)
        try:
            assert await _password(again, "db-pass") == ENCODED
        finally:
            await again.close()
        with pytest.raises(SecretKeyMissing, match=f'encrypted with key "{ring.primary}", which is not in no key file'):
            await SqliteStore.open(db)
        with pytest.raises(SecretKeyMissing, match=re.escape("which is not in /elsewhere/secrets.key")):
            await SqliteStore.open(db, keyring=Keyring.generate(NOW, "/elsewhere/secrets.key"))

    asyncio.run(scenario())
    assert set(_stored_key_ids(db)) == {ring.primary}


def test_plain_secrets_of_an_older_database_are_sealed_at_open(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    ring = Keyring.generate(NOW, str(tmp_path / "secrets.key"))

    async def scenario() -> None:
        old = await SqliteStore.open(db)  # no key: what a shoal before encryption wrote
        try:
            await old.create(_secret("legacy"))
        finally:
            await old.close()
        assert _leaks(tmp_path), "the plain database should hold the value (else this test proves nothing)"
        store = await SqliteStore.open(db, keyring=ring)
        try:
            assert store.sealed_at_open is not None
            assert (store.sealed_at_open.objects, store.sealed_at_open.events) == (1, 1)
            assert await _password(store, "legacy") == ENCODED
        finally:
            await store.close()

    asyncio.run(scenario())
    assert _leaks(tmp_path) == []


def test_rotation_reseals_every_row_with_the_new_key(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    ring = Keyring.generate(NOW, str(tmp_path / "secrets.key"))
    grown = ring.rotated(NOW)

    async def scenario() -> None:
        store = await SqliteStore.open(db, keyring=ring)
        try:
            for i in range(3):
                await store.create(_secret(f"s{i}"))
            done = await store.rotate_secret_key(grown)
            assert (done.objects, done.events, done.key_id, done.dropped) == (3, 3, grown.primary, (ring.primary,))
            await store.create(_secret("after"))
            assert await _password(store, "s1") == ENCODED
        finally:
            await store.close()
        reopened = await SqliteStore.open(db, keyring=grown.only(set()))  # the old key is no longer needed
        try:
            assert len((await reopened.list("Secret", "default")).items) == 4
        finally:
            await reopened.close()

    asyncio.run(scenario())
    assert set(_stored_key_ids(db)) == {grown.primary}
    assert _leaks(tmp_path) == []


def test_unavailable_is_the_base_of_key_errors() -> None:
    assert issubclass(SecretKeyMissing, Unavailable)  # so the server exits with code 3 and a message


# --- server level ------------------------------------------------------------------------------

@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_server(tmp_path / "server")
    try:
        yield server
    finally:
        stop_process(server.process)


def test_server_keeps_secrets_encrypted_through_rotation_and_restart(running: RunningServer) -> None:
    data_dir = running.data_dir
    key_file = data_dir / "secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    first_key = json.loads(key_file.read_text())["primary"]
    manifest = {"apiVersion": "shoal/v1", "kind": "Secret", "metadata": {"name": "db-pass"},
                "stringData": {"password": PLAIN}}
    with running.http() as http:
        created = http.post(SECRETS, json=manifest)
        assert created.status_code == 201, created.text
        read = http.get(f"{SECRETS}/db-pass").json()
        assert read["data"] == {"password": ENCODED}
        events = http.get("/api/v1/namespaces/default/events").text
    assert PLAIN not in events and ENCODED not in events
    assert _leaks(data_dir) == []

    shown = running.cli("get", "secret", "db-pass", "-o", "yaml")
    assert shown.returncode == 0, shown.stderr
    assert ENCODED in shown.stdout  # like kubectl: -o yaml shows the (base64) data
    described = running.cli("describe", "secret", "db-pass")
    assert described.returncode == 0, described.stderr
    assert f"password: {len(PLAIN)} bytes" in described.stdout
    assert PLAIN not in described.stdout and ENCODED not in described.stdout

    rotated = running.cli("secrets", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    ring = json.loads(key_file.read_text())
    assert ring["primary"] != first_key
    assert [k["id"] for k in ring["keys"]] == [ring["primary"]]  # the old key was dropped
    assert f"new key {ring['primary']}" in rotated.stdout and first_key in rotated.stdout
    with running.http() as http:
        assert http.get(f"{SECRETS}/db-pass").json()["data"] == {"password": ENCODED}
    assert _leaks(data_dir) == []
    assert PLAIN not in running.log() and ENCODED not in running.log()

    stop_process(running.process)
    rows = _stored_key_ids(data_dir / "state.db")
    assert rows and set(rows) == {ring["primary"]}
    again = start_server(data_dir, port=running.port)
    try:
        with again.http() as http:
            assert http.get(f"{SECRETS}/db-pass").json()["data"] == {"password": ENCODED}
    finally:
        stop_process(again.process)

    key_file.rename(data_dir / "secrets.key.bak")
    with pytest.raises(RuntimeError) as refused:
        start_server(data_dir, port=running.port)
    assert f"the secrets key file {key_file} is missing" in str(refused.value)
    assert "restore" in str(refused.value)
    assert not key_file.exists()  # no fresh key left behind that would look like the real one
    assert "Traceback" not in str(refused.value)

    key_file.write_text("this is not a key file\n")
    with pytest.raises(RuntimeError) as garbled:
        start_server(data_dir, port=running.port)
    assert f"{key_file} is not a shoal secrets key file" in str(garbled.value)
    assert "Traceback" not in str(garbled.value)


def test_a_node_may_not_rotate_the_key(running: RunningServer) -> None:
    from tests.conftest import join_node

    token = join_node(running, "gw-1")
    with running.http(token=token) as http:
        response = http.post("/api/v1/admin/rotate-secrets-key")
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "Forbidden"
