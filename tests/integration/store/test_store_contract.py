"""The Store contract, run against every backend (FakeStore and SqliteStore on a temp file)."""

from __future__ import annotations

import asyncio
import re

import msgspec
import pytest
from storetest_support import StoreFactory, opened, run

from shoal.model import ConfigMap, Container, LabelSelector, Node, ObjectMeta, Pod, PodSpec, Selector
from shoal.model.selector import Requirement, from_label_selector
from shoal.store import AlreadyExists, Conflict, EventType, Gone, Invalid, NotFound, WatchEvent, WatchStream


def pod(name: str = "", ns: str = "default", labels: dict[str, str] | None = None, image: str = "app:1",
        generate_name: str = "") -> Pod:
    meta = ObjectMeta(name=name, namespace=ns, labels=labels or {}, generate_name=generate_name)
    return Pod(metadata=meta, spec=PodSpec(containers=[Container(name="app", image=image)]))


def match(**labels: str) -> Selector:
    return from_label_selector(LabelSelector(match_labels=labels))


def relabel(obj: Pod, **labels: str) -> Pod:
    return msgspec.structs.replace(obj, metadata=msgspec.structs.replace(obj.metadata, labels=labels))


async def next_event(stream: WatchStream) -> WatchEvent:
    return await asyncio.wait_for(stream.__anext__(), 5)


def test_create_stamps_metadata_and_get_returns_it(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            created = await store.create(pod("web", ns=""))
            assert isinstance(created, Pod)
            meta = created.metadata
            assert meta.namespace == "default"
            assert re.fullmatch(r"[0-9a-f-]{36}", meta.uid)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta.creation_timestamp)
            assert meta.generation == 1
            assert meta.resource_version == str(store.revision) == "1"
            assert await store.get("Pod", "default", "web") == created
            with pytest.raises(NotFound, match='Pod "web" not found in namespace "other"'):
                await store.get("Pod", "other", "web")

    run(body)


def test_duplicate_name_is_already_exists_but_other_namespace_is_fine(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            await store.create(pod("web"))
            with pytest.raises(AlreadyExists, match='Pod "web" already exists'):
                await store.create(pod("web"))
            other = await store.create(pod("web", ns="edge"))
            assert other.metadata.namespace == "edge"
            assert store.revision == 2

    run(body)


def test_stale_resource_version_conflicts_and_current_one_succeeds(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            first = await store.create(pod("web"))
            second = await store.update(relabel(first, tier="front"))
            assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
            with pytest.raises(Conflict, match="resourceVersion"):
                await store.update(relabel(first, tier="back"))
            third = await store.update(relabel(second, tier="back"))
            assert third.metadata.labels == {"tier": "back"}
            assert third.metadata.uid == first.metadata.uid
            assert third.metadata.creation_timestamp == first.metadata.creation_timestamp

    run(body)


def test_unconditional_update_and_update_of_missing_object(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            await store.create(pod("web"))
            updated = await store.update(pod("web", labels={"a": "b"}))  # no resourceVersion: unconditional
            assert updated.metadata.labels == {"a": "b"}
            assert updated.metadata.uid
            with pytest.raises(NotFound):
                await store.update(pod("ghost"))

    run(body)


def test_generation_follows_spec_and_noop_update_makes_no_revision(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            created = await store.create(pod("web"))
            labelled = await store.update(relabel(created, x="y"))
            assert labelled.metadata.generation == 1
            respec = await store.update(msgspec.structs.replace(
                labelled, spec=PodSpec(containers=[Container(name="app", image="app:2")])))
            assert respec.metadata.generation == 2
            revision = store.revision
            same = await store.update(respec)
            assert same == respec
            assert store.revision == revision
            stale_generation = msgspec.structs.replace(respec.metadata, generation=0, resource_version="")
            assert await store.update(msgspec.structs.replace(respec, metadata=stale_generation)) == respec
            assert store.revision == revision

    run(body)


def test_generate_name_picks_unique_names(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            names = {(await store.create(pod(generate_name="web-"))).metadata.name for _ in range(20)}
            assert len(names) == 20
            assert all(re.fullmatch(r"web-[a-z0-9]{5}", name) for name in names)
            with pytest.raises(Invalid, match=r"metadata\.name is required"):
                await store.create(pod())

    run(body)


def test_delete_returns_last_state_and_honours_preconditions(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            created = await store.create(pod("web"))
            with pytest.raises(Conflict):
                await store.delete("Pod", "default", "web", resource_version="999")
            gone = await store.delete("Pod", "default", "web", resource_version=created.metadata.resource_version)
            assert gone.metadata.uid == created.metadata.uid
            with pytest.raises(NotFound):
                await store.get("Pod", "default", "web")
            with pytest.raises(NotFound):
                await store.delete("Pod", "default", "web")
            again = await store.create(pod("web"))
            assert again.metadata.uid != created.metadata.uid

    run(body)


def test_list_by_namespace_and_selector(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            await store.create(pod("a", labels={"app": "web"}))
            await store.create(pod("b", labels={"app": "db"}))
            await store.create(pod("c", ns="edge", labels={"app": "web"}))
            await store.create(Node(metadata=ObjectMeta(name="n1", namespace="ignored")))
            await store.create(ConfigMap(metadata=ObjectMeta(name="cfg")))
            names = lambda result: [(o.metadata.namespace, o.metadata.name) for o in result.items]  # noqa: E731
            assert names(await store.list("Pod")) == [("default", "a"), ("default", "b"), ("edge", "c")]
            assert names(await store.list("Pod", "default")) == [("default", "a"), ("default", "b")]
            web = await store.list("Pod", None, match(app="web"))
            assert names(web) == [("default", "a"), ("edge", "c")]
            assert web.revision == store.revision == 5
            not_web = Selector((Requirement("app", "!=", frozenset({"web"})),))
            assert names(await store.list("Pod", "edge", not_web)) == []
            assert names(await store.list("Node")) == [("", "n1")]
            assert (await store.get("Node", "whatever", "n1")).metadata.name == "n1"
            with pytest.raises(Invalid, match='unknown kind "Gadget"'):
                await store.list("Gadget")

    run(body)


def test_watch_replays_then_streams_live_without_gaps(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            for index in range(5):
                await store.create(pod(f"p{index}"))
            stream = store.watch("Pod", "default", from_revision=2)
            writer = asyncio.ensure_future(asyncio.gather(*(store.create(pod(f"q{i}")) for i in range(20))))
            seen = [await next_event(stream) for _ in range(23)]
            await writer
            assert [event.revision for event in seen] == list(range(3, 26))
            assert all(event.type is EventType.ADDED for event in seen)
            assert seen[0].object.metadata.name == "p2"
            await stream.aclose()

    run(body)


def test_watch_from_now_sees_only_new_events_of_its_filter(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            await store.create(pod("before"))
            pods = store.watch("Pod")
            everything = store.watch(None)
            edge = store.watch("Pod", "edge")
            await store.create(Node(metadata=ObjectMeta(name="n1")))
            await store.create(pod("after", ns="edge"))
            first = await next_event(pods)
            assert (first.type, first.object.metadata.name, first.revision) == (EventType.ADDED, "after", 3)
            assert [(await next_event(everything)).object.metadata.name for _ in range(2)] == ["n1", "after"]
            assert (await next_event(edge)).object.metadata.name == "after"
            deleted = await store.delete("Pod", "edge", "after")
            event = await next_event(pods)
            assert (event.type, event.revision) == (EventType.DELETED, 4)
            assert event.object.metadata.resource_version == deleted.metadata.resource_version == "4"

    run(body)


def test_watch_from_compacted_revision_is_gone(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            for index in range(10):
                await store.create(pod(f"p{index}"))
            await store.compact(3)
            assert store.oldest_revision == 8
            with pytest.raises(Gone, match="too old"):
                store.watch("Pod", from_revision=5)
            stream = store.watch("Pod", from_revision=7)
            assert [(await next_event(stream)).revision for _ in range(3)] == [8, 9, 10]

    run(body)


def test_event_log_is_bounded(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend, event_log=5) as store:
            for index in range(12):
                await store.create(pod(f"p{index}"))
            assert store.oldest_revision == 8
            with pytest.raises(Gone):
                store.watch(None, from_revision=6)
            stream = store.watch(None, from_revision=7)
            assert (await next_event(stream)).revision == 8

    run(body)


def test_selector_watch_sees_objects_enter_and_leave(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            stream = store.watch("Pod", selector=match(app="web"))
            obj = await store.create(pod("x", labels={"app": "db"}))
            obj = await store.update(relabel(obj, app="web"))
            entered = await next_event(stream)
            assert (entered.type, entered.revision) == (EventType.ADDED, 2)
            obj = await store.update(relabel(obj, app="web", extra="1"))
            assert (await next_event(stream)).type is EventType.MODIFIED
            obj = await store.update(relabel(obj, app="db"))
            left = await next_event(stream)
            assert (left.type, left.object.metadata.labels) == (EventType.DELETED, {"app": "db"})
            await store.delete("Pod", "default", "x")  # not matching: nothing
            await store.create(pod("marker", labels={"app": "web"}))
            marker = await next_event(stream)
            assert (marker.type, marker.object.metadata.name) == (EventType.ADDED, "marker")

    run(body)


def test_selector_transitions_replay_from_the_log(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            obj = await store.create(pod("x", labels={"app": "db"}))
            obj = await store.update(relabel(obj, app="web"))
            await store.update(relabel(obj, app="db"))
            stream = store.watch("Pod", from_revision=1, selector=match(app="web"))
            assert [(await next_event(stream)).type for _ in range(2)] == [EventType.ADDED, EventType.DELETED]

    run(body)


def test_concurrent_creates_get_distinct_increasing_revisions(open_backend: StoreFactory) -> None:
    async def body() -> None:
        async with opened(open_backend) as store:
            created = await asyncio.gather(*(store.create(pod(f"p{i}")) for i in range(300)))
            revisions = sorted(int(obj.metadata.resource_version) for obj in created)
            assert revisions == list(range(1, 301))
            assert store.revision == 300
            assert len((await store.list("Pod")).items) == 300

    run(body)


def test_watch_ends_when_the_store_closes(open_backend: StoreFactory) -> None:
    async def body() -> None:
        store = await open_backend()
        stream = store.watch(None)

        async def consume() -> list[WatchEvent]:
            return [event async for event in stream]

        consumer = asyncio.ensure_future(consume())
        await store.create(pod("a"))
        await asyncio.sleep(0.01)
        await store.close()
        events = await asyncio.wait_for(consumer, 5)
        assert [event.object.metadata.name for event in events] == ["a"]

    run(body)
