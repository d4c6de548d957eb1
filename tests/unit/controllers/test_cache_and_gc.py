"""The informer cache (idempotent by revision, indexes) and the pure garbage-collection rule."""

from __future__ import annotations

import msgspec

from shoal.controllers import Cache, Delete, Informer, reconcile_orphan
from shoal.model import ObjectMeta, OwnerReference, Pod

from .helpers import FakeClock, bare_pod, online_node
from .memstore import MemStore


def pod(name: str, rv: int, *, owner: str = "", node: str = "", uid: str = "") -> Pod:
    refs = [OwnerReference(kind="Deployment", name="web", uid=owner, controller=True)] if owner else []
    base = bare_pod(name, node)
    return msgspec.structs.replace(base, metadata=ObjectMeta(
        name=name, namespace="default", uid=uid or f"uid-{name}-{rv}", resource_version=str(rv),
        owner_references=refs))


def informer() -> tuple[Informer, list[tuple[str, str | None, str | None]]]:
    inf = Informer(MemStore(FakeClock()), ["Pod", "Deployment"])
    seen: list[tuple[str, str | None, str | None]] = []
    inf.subscribe(lambda kind, old, new: seen.append((
        kind, old.metadata.resource_version if isinstance(old, Pod) else None,
        new.metadata.resource_version if isinstance(new, Pod) else None)))
    return inf, seen


def test_events_apply_once_and_stale_ones_are_ignored() -> None:
    inf, seen = informer()
    inf.observe("ADDED", pod("a", 5), 5)
    inf.observe("ADDED", pod("a", 5), 5)  # echo of a write already applied
    inf.observe("MODIFIED", pod("a", 4), 4)  # older than what is cached
    assert seen == [("Pod", None, "5")]
    inf.observe("DELETED", pod("a", 9), 9)
    inf.observe("ADDED", pod("a", 10, uid="second"), 10)  # re-created
    inf.observe("DELETED", pod("a", 9), 9)  # a replayed delete of the first incarnation
    cached = inf.cache.get(("Pod", "default", "a"))
    assert isinstance(cached, Pod) and cached.metadata.uid == "second"
    inf.observe("ADDED", online_node("x"), 11)  # kinds not watched are ignored
    assert seen[-1] == ("Pod", None, "10")


def test_cache_indexes_follow_changes() -> None:
    cache = Cache()
    cache.put(pod("a", 1, owner="d1", node="n1"))
    cache.put(pod("b", 2, owner="d1", node="n2"))
    assert [p.metadata.name for p in cache.owned_by("d1")] == ["a", "b"]  # type: ignore[attr-defined]
    assert [p.metadata.name for p in cache.pods_on_node("n1")] == ["a"]
    cache.put(pod("a", 3, owner="d2", node="n2"))  # moved owner and node
    assert [p.metadata.name for p in cache.owned_by("d1")] == ["b"]  # type: ignore[attr-defined]
    assert cache.pods_on_node("n1") == []
    assert sorted(p.metadata.name for p in cache.pods_on_node("n2")) == ["a", "b"]
    cache.remove(("Pod", "default", "b"))
    assert cache.owned_by("d1") == [] and cache.by_uid("uid-b-2") is None
    assert cache.by_uid("uid-a-3") is not None and len(cache) == 1


def test_orphan_of_a_vanished_owner_is_deleted() -> None:
    orphan = pod("a", 7, owner="gone")
    actions = reconcile_orphan(orphan, ["Deployment"], lambda uid: uid == "alive")
    assert actions.steps == (Delete("Pod", "default", "a", "7"),)


def test_objects_with_live_untracked_or_no_owner_stay() -> None:
    assert reconcile_orphan(pod("a", 1, owner="alive"), ["Deployment"], lambda uid: uid == "alive").steps == ()
    assert reconcile_orphan(pod("b", 1), ["Deployment"], lambda uid: False).steps == ()
    daemon = msgspec.structs.replace(pod("c", 1), metadata=msgspec.structs.replace(
        pod("c", 1).metadata, owner_references=[OwnerReference(kind="DaemonSet", name="d", uid="x", controller=True)]))
    assert reconcile_orphan(daemon, ["Deployment"], lambda uid: False).steps == ()
    non_controller = msgspec.structs.replace(pod("d", 1), metadata=msgspec.structs.replace(
        pod("d", 1).metadata, owner_references=[OwnerReference(kind="Deployment", name="w", uid="x")]))
    assert reconcile_orphan(non_controller, ["Deployment"], lambda uid: False).steps == ()
