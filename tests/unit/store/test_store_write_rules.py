"""The write planner's rules for store-owned metadata, with a fixed clock and random source."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec
import pytest

from shoal.model import Container, Node, ObjectMeta, Pod, PodSpec
from shoal.model.meta import ManagedFieldsEntry
from shoal.store import AlreadyExists, Conflict, EventType, Invalid
from shoal.store.writes import Change, Key, WritePlanner

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def planner(seed: int = 7) -> WritePlanner:
    return WritePlanner(clock=lambda: NOW, rng=random.Random(seed))


def nothing(_: Key) -> None:
    return None


def created(obj: Pod | Node, revision: int = 1) -> Pod | Node:
    change = planner().create(obj, nothing, revision)
    assert isinstance(change, Change) and isinstance(change.object, Pod | Node)
    return change.object


def test_create_stamps_from_the_clock_and_scopes_namespaces() -> None:
    pod = created(Pod(metadata=ObjectMeta(name="web")), 7)
    assert pod.metadata.creation_timestamp == "2026-01-02T03:04:05Z"
    assert (pod.metadata.namespace, pod.metadata.generation, pod.metadata.resource_version) == ("default", 1, "7")
    node = created(Node(metadata=ObjectMeta(name="n1", namespace="stray")))
    assert node.metadata.namespace == ""


def test_generate_name_retries_on_collision_and_gives_up_clearly() -> None:
    first = planner(3).create(Pod(metadata=ObjectMeta(generate_name="job-")), nothing, 1).key
    taken = {first}
    second = planner(3).create(Pod(metadata=ObjectMeta(generate_name="job-")),
                               lambda key: Pod() if key in taken else None, 1).key
    assert second != first and second[2].startswith("job-")
    with pytest.raises(AlreadyExists, match='names starting "job-" are exhausted'):
        planner().create(Pod(metadata=ObjectMeta(generate_name="job-")), lambda key: Pod(), 1)


def test_update_rules() -> None:
    stored = created(Pod(metadata=ObjectMeta(name="web"), spec=PodSpec(containers=[Container(name="a", image="i:1")])))
    assert isinstance(stored, Pod)
    lookup = lambda key: stored  # noqa: E731
    rules = planner()
    with pytest.raises(Conflict, match="deleted and re-created"):
        rules.update(msgspec.structs.replace(stored, metadata=msgspec.structs.replace(stored.metadata, uid="x")),
                     lookup, 2)
    with pytest.raises(Invalid, match=r"metadata\.name is required"):
        rules.update(Pod(), lookup, 2)
    managed = msgspec.structs.replace(stored.metadata, managed_fields=[ManagedFieldsEntry(manager="m", time="t1")])
    stored = msgspec.structs.replace(stored, metadata=managed)
    retimed = msgspec.structs.replace(managed, managed_fields=[ManagedFieldsEntry(manager="m", time="t2")])
    assert rules.update(msgspec.structs.replace(stored, metadata=retimed), lookup, 2) is stored
    spec = PodSpec(containers=[Container(name="a", image="i:2")])
    change = rules.update(msgspec.structs.replace(stored, spec=spec), lookup, 2)
    assert isinstance(change, Change) and isinstance(change.object, Pod)
    assert (change.type, change.object.metadata.generation, change.prev) == (EventType.MODIFIED, 2, stored)
    assert change.object.metadata.resource_version == "2"
