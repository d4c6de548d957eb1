"""Random operation sequences on FakeStore agree with a plain dict model, and watches replay them."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.model import LabelSelector, ObjectMeta, Pod
from shoal.model.selector import from_label_selector
from shoal.store import AlreadyExists, Conflict, EventType, FakeStore, NotFound, WatchEvent

NAMES = st.sampled_from(["a", "b", "c"])
COLOURS = st.sampled_from(["red", "blue"])
OPS = st.lists(st.one_of(
    st.tuples(st.just("create"), NAMES, COLOURS, st.booleans()),
    st.tuples(st.just("update"), NAMES, COLOURS, st.booleans()),
    st.tuples(st.just("delete"), NAMES, COLOURS, st.booleans()),
), max_size=40)


def replay(events: list[WatchEvent]) -> dict[str, dict[str, str]]:
    state: dict[str, dict[str, str]] = {}
    for event in events:
        if event.type is EventType.DELETED:
            state.pop(event.object.metadata.name, None)
        else:
            state[event.object.metadata.name] = event.object.metadata.labels
    return state


async def exercise(ops: list[tuple[str, str, str, bool]]) -> None:
    store = FakeStore(event_log=1000)
    model: dict[str, tuple[dict[str, str], str]] = {}  # name -> (labels, resourceVersion)
    everything = store.watch("Pod")
    red = store.watch("Pod", selector=from_label_selector(LabelSelector(match_labels={"colour": "red"})))
    for action, name, colour, stale in ops:
        labels = {"colour": colour}
        before = store.revision
        try:
            if action == "create":
                obj = await store.create(Pod(metadata=ObjectMeta(name=name, labels=labels)))
                assert name not in model
                model[name] = (labels, obj.metadata.resource_version)
            elif action == "update":
                version = "1" if stale else (model[name][1] if name in model else "")
                obj = await store.update(Pod(metadata=ObjectMeta(name=name, labels=labels, resource_version=version)))
                assert name in model and (not stale or model[name][1] == "1")
                model[name] = (labels, obj.metadata.resource_version)
            else:
                await store.delete("Pod", "default", name)
                assert name in model
                del model[name]
        except AlreadyExists:
            assert action == "create" and name in model
        except NotFound:
            assert name not in model
        except Conflict:
            assert stale and model[name][1] != "1"
        assert store.revision - before in (0, 1)
    listed = {o.metadata.name: o.metadata.labels for o in (await store.list("Pod")).items}
    assert listed == {name: labels for name, (labels, _) in model.items()}
    await store.close()
    events = [event async for event in everything]
    assert [event.revision for event in events] == list(range(1, store.revision + 1))
    assert replay(events) == listed
    assert replay([event async for event in red]) == {n: lb for n, lb in listed.items() if lb["colour"] == "red"}


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_fake_store_matches_a_dict_model(ops: list[tuple[str, str, str, bool]]) -> None:
    asyncio.run(exercise(ops))

