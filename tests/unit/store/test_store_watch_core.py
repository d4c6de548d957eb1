"""The in-memory watch core: replay bounds, slow watchers, and watches that end cleanly."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from shoal.model import ObjectMeta, Pod
from shoal.model.selector import Requirement, Selector
from shoal.store import EventType, FakeStore, Gone, Invalid, Unavailable
from shoal.store.memory import LoggedEvent, ObjectIndex, _Subscriber
from shoal.store.protocol import WatchEvent


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 10))


def pod(name: str, ns: str = "default", **labels: str) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=ns, labels=labels))


def test_a_watcher_that_falls_behind_gets_gone_and_never_blocks_writers() -> None:
    async def body() -> None:
        store = FakeStore(watch_buffer=3)
        slow = store.watch("Pod")
        for index in range(10):  # writers go on regardless of the unread watcher
            await store.create(pod(f"p{index}"))
        with pytest.raises(Gone, match="fell more than 3 events behind"):
            await slow.__anext__()
        assert store.watchers == 0
        fresh = store.watch("Pod", from_revision=store.revision - 1)
        assert (await fresh.__anext__()).revision == 10

    run(body)


def test_breaking_out_of_a_watch_unsubscribes_it() -> None:
    async def body() -> None:
        store = FakeStore()
        await store.create(pod("a"))
        await store.create(pod("b"))
        async for event in store.watch("Pod", from_revision=1):
            assert event.revision == 2
            break
        gc.collect()
        assert store.watchers == 0
        stream = store.watch(None)
        assert store.watchers == 1
        await stream.aclose()
        assert store.watchers == 0
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()

    run(body)


def test_replay_boundaries_and_bad_revisions() -> None:
    async def body() -> None:
        store = FakeStore(event_log=4)
        for index in range(10):
            await store.create(pod(f"p{index}"))
        assert store.oldest_revision == 7
        store.watch(None, from_revision=6)  # replays 7..10
        with pytest.raises(Gone):
            store.watch(None, from_revision=5)
        with pytest.raises(Invalid, match="negative"):
            store.watch(None, from_revision=-1)
        future = store.watch(None, from_revision=12)  # a revision not reached yet: wait for it
        for index in range(3):
            await store.create(pod(f"q{index}"))
        assert (await future.__anext__()).revision == 13

    run(body)


def test_closing_ends_waiting_watchers_and_refuses_new_ones() -> None:
    async def body() -> None:
        store = FakeStore()
        stream = store.watch("Pod")
        waiter = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        await store.close()
        with pytest.raises(StopAsyncIteration):
            await waiter
        with pytest.raises(Unavailable):
            store.watch("Pod")
        with pytest.raises(Unavailable):
            await store.get("Pod", "default", "a")

    run(body)


def test_a_cancelled_reader_can_read_again() -> None:
    async def body() -> None:
        store = FakeStore()
        stream = store.watch("Pod")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 0.01)
        await store.create(pod("a"))
        assert (await stream.__anext__()).object.metadata.name == "a"

    run(body)


def test_selector_view_of_modifications() -> None:
    web = Selector((Requirement("app", "=", frozenset({"web"})),))
    sub = _Subscriber("Pod", None, web, 10)

    def modified(now: dict[str, str], before: dict[str, str] | None) -> EventType | None:
        event = WatchEvent(EventType.MODIFIED, pod("x", **now), 2)
        seen = sub.view(LoggedEvent(event, ("Pod", "default", "x"), before))
        return None if seen is None else seen.type

    assert modified({"app": "web"}, {"app": "web"}) is EventType.MODIFIED
    assert modified({"app": "web"}, {"app": "db"}) is EventType.ADDED
    assert modified({"app": "db"}, {"app": "web"}) is EventType.DELETED
    assert modified({"app": "db"}, {"app": "db"}) is None
    assert modified({"app": "web"}, None) is EventType.MODIFIED
    assert modified({"app": "db"}, None) is None


def test_index_lists_in_namespace_then_name_order() -> None:
    index = ObjectIndex()
    for ns, name in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "x")]:
        index.put(("Pod", ns, name), pod(name, ns))
    assert [(o.metadata.namespace, o.metadata.name) for o in index.list("Pod", None, None)] == [
        ("a", "x"), ("a", "y"), ("b", "a"), ("b", "z")]
    index.remove(("Pod", "a", "x"))
    index.remove(("Pod", "a", "y"))
    index.remove(("Pod", "a", "missing"))
    assert len(index) == 2
    assert index.list("Pod", "a", None) == []
    assert index.list("Node", None, None) == []
