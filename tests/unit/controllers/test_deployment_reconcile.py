"""reconcile_deployment as a pure function: names, labels, owners, scaling, rollouts, status."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.controllers import Actions, Create, Delete, EmitEvent, Update, reconcile_deployment, template_hash
from shoal.controllers.deployment import is_ready
from shoal.model import Deployment, ObjectMeta, OwnerReference, Pod, PodPhase
from shoal.model.workloads import LABEL_TEMPLATE_HASH, StrategyType

from .helpers import T0, deployment, ready_status


def suffixes() -> Iterator[str]:
    for n in itertools.count():
        yield f"{n:05d}"


def make_suffix() -> object:
    gen = suffixes()
    return lambda: next(gen)


def owned_pod(deploy: Deployment, name: str, pod_hash: str | None = None, *, ready: bool = True,
              node: str = "n1", phase: PodPhase = PodPhase.RUNNING, created: str = "2026-11-23T07:00:00Z",
              deleting: bool = False) -> Pod:
    h = pod_hash if pod_hash is not None else template_hash(deploy.spec.template)
    owner = OwnerReference(kind="Deployment", name=deploy.metadata.name, uid=deploy.metadata.uid, controller=True)
    template = deploy.spec.template
    return Pod(metadata=ObjectMeta(name=name, namespace="default", uid=f"uid-{name}",
                                   labels={**template.metadata.labels, LABEL_TEMPLATE_HASH: h},
                                   owner_references=[owner], creation_timestamp=created, resource_version="9",
                                   deletion_timestamp="2026-11-23T07:59:00Z" if deleting else ""),
               spec=msgspec.structs.replace(template.spec, node_name=node),
               status=ready_status(ready, phase) if node else ready_status(False, PodPhase.PENDING))


def creates(actions: Actions) -> list[Pod]:
    return [s.obj for s in actions.steps if isinstance(s, Create) and isinstance(s.obj, Pod)]


def deletes(actions: Actions) -> list[str]:
    return [s.name for s in actions.steps if isinstance(s, Delete)]


def test_creates_replicas_with_names_labels_and_owner() -> None:
    deploy = deployment(replicas=3)
    actions = reconcile_deployment(deploy, [], T0, make_suffix())  # type: ignore[arg-type]
    pods = creates(actions)
    h = template_hash(deploy.spec.template)
    assert re.fullmatch(r"[0-9a-f]{10}", h)
    assert [p.metadata.name for p in pods] == [f"web-{h}-00000", f"web-{h}-00001", f"web-{h}-00002"]
    for pod in pods:
        assert pod.metadata.labels == {"app": "web", LABEL_TEMPLATE_HASH: h}
        assert pod.metadata.namespace == "default"
        (ref,) = pod.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Deployment", "web", "d-uid", True)
        assert pod.spec == deploy.spec.template.spec
    messages = [s.message for s in actions.steps if isinstance(s, EmitEvent)]
    assert messages == [f"Created pod {p.metadata.name}" for p in pods]


def test_random_suffix_is_five_lowercase_alphanumerics() -> None:
    (pod,) = creates(reconcile_deployment(deployment(replicas=1), [], T0))
    assert re.fullmatch(r"web-[0-9a-f]{10}-[a-z0-9]{5}", pod.metadata.name)


def test_template_hash_is_stable_and_ignores_label_order() -> None:
    a = deployment().spec.template
    b = msgspec.structs.replace(a, metadata=msgspec.structs.replace(a.metadata, labels={"z": "1", "app": "web"}))
    c = msgspec.structs.replace(a, metadata=msgspec.structs.replace(a.metadata, labels={"app": "web", "z": "1"}))
    assert template_hash(b) == template_hash(c)
    assert template_hash(a) == template_hash(deployment().spec.template)
    assert template_hash(a) != template_hash(deployment(image="web:2").spec.template)


def test_steady_state_does_nothing() -> None:
    deploy = deployment(replicas=2)
    pods = [owned_pod(deploy, "a"), owned_pod(deploy, "b")]
    first = reconcile_deployment(deploy, pods, T0)
    assert not creates(first) and not deletes(first)
    (update,) = [s for s in first.steps if isinstance(s, Update)]
    settled = update.obj
    assert isinstance(settled, Deployment)
    assert (settled.status.replicas, settled.status.ready_replicas, settled.status.available_replicas,
            settled.status.updated_replicas, settled.status.observed_generation) == (2, 2, 2, 2, 1)
    again = reconcile_deployment(settled, pods, T0)
    assert again.steps == ()


def test_scale_down_prefers_unscheduled_then_not_ready_then_newest() -> None:
    deploy = deployment(replicas=2)
    pods = [
        owned_pod(deploy, "old-ready", created="2026-11-23T06:00:00Z"),
        owned_pod(deploy, "new-ready", created="2026-11-23T07:30:00Z"),
        owned_pod(deploy, "not-ready", ready=False, created="2026-11-23T05:00:00Z"),
        owned_pod(deploy, "unscheduled", node="", created="2026-11-23T04:00:00Z"),
        owned_pod(deploy, "mid-ready", created="2026-11-23T07:00:00Z"),
    ]
    assert deletes(reconcile_deployment(deploy, pods, T0)) == ["unscheduled", "not-ready", "new-ready"]


def test_failed_and_succeeded_pods_are_replaced_and_deleting_pods_not_counted() -> None:
    deploy = deployment(replicas=3)
    pods = [owned_pod(deploy, "ok"), owned_pod(deploy, "failed", phase=PodPhase.FAILED),
            owned_pod(deploy, "done", phase=PodPhase.SUCCEEDED), owned_pod(deploy, "going", deleting=True)]
    actions = reconcile_deployment(deploy, pods, T0, make_suffix())  # type: ignore[arg-type]
    assert sorted(deletes(actions)) == ["done", "failed"]
    assert len(creates(actions)) == 2


def test_deleting_deployment_does_nothing() -> None:
    deploy = deployment()
    deploy = msgspec.structs.replace(deploy, metadata=msgspec.structs.replace(
        deploy.metadata, deletion_timestamp="2026-11-23T07:00:00Z"))
    assert reconcile_deployment(deploy, [], T0).steps == ()


def test_status_written_only_when_changed() -> None:
    deploy = deployment(replicas=1)
    pods = [owned_pod(deploy, "a")]
    (update,) = [s for s in reconcile_deployment(deploy, pods, T0).steps if isinstance(s, Update)]
    assert isinstance(update.obj, Deployment)
    assert update.obj.metadata.resource_version == "5"  # CAS on what was read
    assert not [s for s in reconcile_deployment(update.obj, pods, T0).steps if isinstance(s, Update)]


def test_rolling_update_respects_max_surge_and_keeps_ready_pods() -> None:
    old = deployment(replicas=3, image="web:1")
    new = deployment(replicas=3, image="web:2", surge=1, unavailable=0)
    old_hash = template_hash(old.spec.template)
    pods = [owned_pod(old, f"o{i}", old_hash) for i in range(3)]
    actions = reconcile_deployment(new, pods, T0, make_suffix())  # type: ignore[arg-type]
    assert len(creates(actions)) == 1 and deletes(actions) == []  # surge one, keep all ready old pods
    surge = creates(actions)[0]
    assert surge.metadata.labels[LABEL_TEMPLATE_HASH] == template_hash(new.spec.template)
    not_ready_new = owned_pod(new, surge.metadata.name, ready=False)
    waiting = reconcile_deployment(new, [*pods, not_ready_new], T0)
    assert creates(waiting) == [] and deletes(waiting) == []  # waits for the new pod to be ready
    ready_new = owned_pod(new, surge.metadata.name)
    step = reconcile_deployment(new, [*pods, ready_new], T0, make_suffix())  # type: ignore[arg-type]
    assert len(deletes(step)) == 1 and deletes(step)[0].startswith("o")


def test_recreate_deletes_old_before_creating() -> None:
    old = deployment(replicas=2, image="web:1")
    new = deployment(replicas=2, image="web:2", strategy=StrategyType.RECREATE)
    old_hash = template_hash(old.spec.template)
    pods = [owned_pod(old, "o1", old_hash), owned_pod(old, "o2", old_hash)]
    first = reconcile_deployment(new, pods, T0)
    assert sorted(deletes(first)) == ["o1", "o2"] and creates(first) == []
    assert len(creates(reconcile_deployment(new, [], T0))) == 2


def test_percent_surge_and_unavailable() -> None:
    old = deployment(replicas=4, image="web:1")
    new = deployment(replicas=4, image="web:2", surge="25%", unavailable="50%")
    pods = [owned_pod(old, f"o{i}", template_hash(old.spec.template)) for i in range(4)]
    actions = reconcile_deployment(new, pods, T0, make_suffix())  # type: ignore[arg-type]
    assert len(creates(actions)) == 1  # ceil(25% of 4)
    assert len(deletes(actions)) == 2  # floor(50% of 4) may be unavailable


def _simulate(deploy: Deployment, pods: list[Pod], rounds: int = 60) -> tuple[list[Pod], int]:
    """Apply actions like a store would; between rounds the scheduler and agents make every
    pending pod Running and Ready. Stops when a round has nothing to create or delete and no pod
    is still on its way to Ready (a rollout may be waiting for exactly that)."""
    counter = itertools.count()
    for n in range(rounds):
        actions = reconcile_deployment(deploy, pods, T0, lambda: f"{next(counter):05d}")
        for step in actions.steps:
            if isinstance(step, Update) and isinstance(step.obj, Deployment):
                deploy = step.obj
        gone = set(deletes(actions))
        pods = [p for p in pods if p.metadata.name not in gone]
        pods += [owned_pod(deploy, p.metadata.name, p.metadata.labels[LABEL_TEMPLATE_HASH], ready=False, node="",
                           created=f"2026-11-23T09:{n:02d}:00Z") for p in creates(actions)]
        matured = [p if p.metadata.deletion_timestamp or p.status.phase in (PodPhase.FAILED, PodPhase.SUCCEEDED)
                   else msgspec.structs.replace(p, spec=msgspec.structs.replace(p.spec, node_name="n1"),
                                                status=ready_status()) for p in pods]
        if not any(isinstance(s, Create | Delete) for s in actions.steps) and matured == pods:
            return pods, n
        pods = matured
    raise AssertionError(f"no convergence after {rounds} rounds: {[p.metadata.name for p in pods]}")


pod_states = st.tuples(st.booleans(), st.booleans(), st.sampled_from(list(PodPhase)), st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(replicas=st.integers(0, 6), surge=st.integers(0, 3), unavailable=st.integers(0, 3),
       recreate=st.booleans(), states=st.lists(pod_states, max_size=10))
def test_any_pods_converge_to_exactly_replicas_of_current_hash(
        replicas: int, surge: int, unavailable: int, recreate: bool,
        states: list[tuple[bool, bool, PodPhase, bool, bool]]) -> None:
    old = deployment(replicas=replicas, image="web:1")
    new = deployment(replicas=replicas, image="web:2", surge=surge, unavailable=unavailable,
                     strategy=StrategyType.RECREATE if recreate else StrategyType.ROLLING_UPDATE)
    pods = []
    for i, (is_new, ready, phase, scheduled, deleting) in enumerate(states):
        source = new if is_new else old
        pods.append(owned_pod(source, f"p{i}", template_hash(source.spec.template), ready=ready, phase=phase,
                              node="n1" if scheduled else "", deleting=deleting))
    final, _ = _simulate(new, pods)
    live = [p for p in final if not p.metadata.deletion_timestamp]
    current = template_hash(new.spec.template)
    assert len(live) == replicas
    assert all(p.metadata.labels[LABEL_TEMPLATE_HASH] == current for p in live)


@settings(max_examples=100, deadline=None)
@given(replicas=st.integers(1, 6), surge=st.integers(0, 3), unavailable=st.integers(0, 3))
def test_rolling_update_bounds_hold_at_every_step(replicas: int, surge: int, unavailable: int) -> None:
    old = deployment(replicas=replicas, image="web:1")
    new = deployment(replicas=replicas, image="web:2", surge=surge, unavailable=unavailable)
    pods = [owned_pod(old, f"o{i}", template_hash(old.spec.template)) for i in range(replicas)]
    eff_unavailable = 1 if surge == 0 and unavailable == 0 else unavailable
    counter = itertools.count()
    for _ in range(50):
        actions = reconcile_deployment(new, pods, T0, lambda: f"{next(counter):05d}")
        gone = set(deletes(actions))
        pods = [p for p in pods if p.metadata.name not in gone]
        assert sum(1 for p in pods if is_ready(p)) >= replicas - eff_unavailable
        pods += [owned_pod(new, p.metadata.name, p.metadata.labels[LABEL_TEMPLATE_HASH], ready=False)
                 for p in creates(actions)]
        assert len(pods) <= replicas + surge
        pods = [owned_pod(new, p.metadata.name, p.metadata.labels[LABEL_TEMPLATE_HASH])
                if p.metadata.name.startswith("web-") else p for p in pods]  # new pods become ready
        if not actions.writes or all(isinstance(w, Update) for w in actions.writes):
            break
    assert sorted(p.metadata.labels[LABEL_TEMPLATE_HASH] for p in pods) == [template_hash(new.spec.template)] * replicas
