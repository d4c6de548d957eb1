"""SqliteStore behaviour beyond the shared contract: reopening, compaction on disk, bad files, URLs."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import msgspec
import pytest
from storetest_support import run

from shoal.model import LabelSelector, Node, ObjectMeta, Pod
from shoal.model.selector import from_label_selector
from shoal.store import EventType, FakeStore, Gone, Invalid, SqliteStore, Unavailable, open_store


def pod(name: str, **labels: str) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, labels=labels))


def test_reopen_keeps_objects_revision_and_event_log(tmp_path: Path) -> None:
    path = tmp_path / "shoal.db"

    async def body() -> None:
        store = await SqliteStore.open(path)
        first = await store.create(pod("a", app="db"))
        await store.update(msgspec.structs.replace(first, metadata=msgspec.structs.replace(
            first.metadata, labels={"app": "web"})))
        await store.create(pod("b"))
        await store.delete("Pod", "default", "b")
        await store.create(Node(metadata=ObjectMeta(name="n1")))
        await store.close()

        store = await SqliteStore.open(path)
        try:
            assert store.revision == 5
            assert [o.metadata.name for o in (await store.list("Pod")).items] == ["a"]
            assert (await store.get("Pod", "default", "a")).metadata.labels == {"app": "web"}
            assert (await store.get("Node", "", "n1")).metadata.resource_version == "5"
            replay = store.watch("Pod", from_revision=0 + 1)
            assert [((e := await replay.__anext__()).type, e.revision) for _ in range(3)] == [
                (EventType.MODIFIED, 2), (EventType.ADDED, 3), (EventType.DELETED, 4)]
            web = from_label_selector(LabelSelector(match_labels={"app": "web"}))
            entered = await store.watch("Pod", from_revision=1, selector=web).__anext__()
            assert (entered.type, entered.revision) == (EventType.ADDED, 2)
            created = await store.create(pod("c"))
            assert created.metadata.resource_version == "6"
        finally:
            await store.close()

    run(body)


def test_event_table_is_compacted_and_stays_compacted_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "shoal.db"

    async def body() -> None:
        store = await SqliteStore.open(path, event_log=5)
        for index in range(20):
            await store.create(pod(f"p{index}"))
        await store.close()
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("SELECT MIN(rev), MAX(rev) FROM events").fetchone() == (16, 20)
        store = await SqliteStore.open(path, event_log=100)
        try:
            assert store.oldest_revision == 16
            with pytest.raises(Gone):
                store.watch(None, from_revision=10)
            await store.compact(2)
            assert store.oldest_revision == 19
        finally:
            await store.close()
        store = await SqliteStore.open(path)
        try:
            assert (store.oldest_revision, store.revision) == (19, 20)
        finally:
            await store.close()

    run(body)


def test_compacting_everything_keeps_the_revision(tmp_path: Path) -> None:
    path = tmp_path / "shoal.db"

    async def body() -> None:
        store = await SqliteStore.open(path)
        for index in range(3):
            await store.create(pod(f"p{index}"))
        await store.compact(0)
        await store.close()
        store = await SqliteStore.open(path)
        try:
            assert (store.revision, store.oldest_revision) == (3, 4)
            stream = store.watch("Pod", from_revision=3)
            await store.create(pod("next"))
            assert (await stream.__anext__()).revision == 4
        finally:
            await store.close()

    run(body)


def test_second_server_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shoal.db"

    async def body() -> None:
        store = await SqliteStore.open(path)
        try:
            with pytest.raises(Unavailable, match="in use by another process"):
                await SqliteStore.open(path)
            await store.create(pod("still-works"))
        finally:
            await store.close()

    run(body)


def test_bad_paths_and_files_give_clear_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)

    async def body() -> None:
        with pytest.raises(Unavailable, match="check that its directory exists"):
            await SqliteStore.open(tmp_path / "missing" / "shoal.db")
        with pytest.raises(Unavailable, match="not a usable shoal store database"):
            await SqliteStore.open(junk)

    run(body)


def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "shoal.db")
        await store.close()
        with pytest.raises(Unavailable, match="closed"):
            await store.create(pod("late"))

    run(body)


def test_open_store_urls(tmp_path: Path) -> None:
    async def body() -> None:
        for url in (f"sqlite://{tmp_path}/a.db", str(tmp_path / "b.db")):
            store = await open_store(url)
            assert isinstance(store, SqliteStore)
            await store.close()
        assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()
        memory = await open_store("memory://")
        assert isinstance(memory, FakeStore)
        await memory.close()
        with pytest.raises(Invalid, match="absolute path"):
            await open_store("sqlite://relative.db")
        with pytest.raises(Invalid, match='scheme "etcd" is not supported'):
            await open_store("etcd://127.0.0.1:2379")

    run(body)


def test_a_failed_commit_acknowledges_nothing_and_the_next_write_works(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from shoal.store import sqlite_writer

    real_write = sqlite_writer.SqliteWriter._write
    failures = iter([True])

    def flaky_write(self: sqlite_writer.SqliteWriter, *args: object) -> None:
        if next(failures, False):
            raise sqlite3.OperationalError("disk I/O error")
        real_write(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_writer.SqliteWriter, "_write", flaky_write)

    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "shoal.db")
        try:
            with pytest.raises(Unavailable, match="disk I/O error; nothing was saved"):
                await store.create(pod("lost"))
            assert store.revision == 0
            created = await store.create(pod("lost"))  # the name is free: the failed write left no trace
            assert created.metadata.resource_version == "1"
        finally:
            await store.close()
        store = await SqliteStore.open(tmp_path / "shoal.db")
        try:
            assert [o.metadata.name for o in (await store.list("Pod")).items] == ["lost"]
        finally:
            await store.close()

    run(body)
