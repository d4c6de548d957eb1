"""The pure DaemonSet reconcile: which nodes get a pod, what is removed, and how an update rolls."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count

import msgspec
from tests.unit.controllers.helpers import T0

from shoal.controllers.actions import Actions, Create, Delete, Update
from shoal.controllers.daemonset import node_keeps_pod, node_wants_pod, reconcile_daemonset
from shoal.controllers.rollout_pods import template_hash
from shoal.model import Condition, Container, Node, NodeSpec, ObjectMeta, Pod, PodPhase, PodSpec, PodStatus, Taint
from shoal.model.daemonset import (
    DaemonSet,
    DaemonSetRollingUpdate,
    DaemonSetSpec,
    DaemonSetUpdateStrategy,
    daemonset_errors,
)
from shoal.model.meta import LabelSelector, LabelSelectorRequirement
from shoal.model.node import TAINT_OFFLINE, TAINT_UNSCHEDULABLE, NodePhase, NodeStatus
from shoal.model.pod import (
    Affinity,
    NodeAffinity,
    NodeSelector,
    NodeSelectorTerm,
    PodTemplateSpec,
    Toleration,
)
from shoal.model.workloads import LABEL_TEMPLATE_HASH

_names = count()


def daemonset(image: str = "agent:1", *, selector: dict[str, str] | None = None, unavailable: int | str = 1,
              tolerations: Sequence[Toleration] = (), affinity: Affinity | None = None) -> DaemonSet:
    spec = PodSpec(containers=[Container(name="agent", image=image)], node_selector=selector or {},
                   tolerations=list(tolerations), affinity=affinity)
    return DaemonSet(metadata=ObjectMeta(name="agent", namespace="default", uid="ds-uid", generation=1),
                     spec=DaemonSetSpec(selector=LabelSelector(match_labels={"app": "agent"}),
                                        template=PodTemplateSpec(metadata=ObjectMeta(labels={"app": "agent"}),
                                                                 spec=spec),
                                        update_strategy=DaemonSetUpdateStrategy(
                                            rolling_update=DaemonSetRollingUpdate(max_unavailable=unavailable))))


def node(name: str, labels: dict[str, str] | None = None, taints: Sequence[Taint] = (), *,
         unschedulable: bool = False, phase: NodePhase = NodePhase.ONLINE) -> Node:
    return Node(metadata=ObjectMeta(name=name, labels=labels or {}),
                spec=NodeSpec(unschedulable=unschedulable, taints=list(taints)), status=NodeStatus(phase=phase))


def pod_on(ds: DaemonSet, node_name: str, *, ready: bool = True, image_hash: str | None = None,
           phase: PodPhase = PodPhase.RUNNING) -> Pod:
    pod_hash = image_hash or template_hash(ds.spec.template)
    return Pod(metadata=ObjectMeta(name=f"agent-{next(_names)}", namespace="default", uid=f"u{next(_names)}",
                                   resource_version="7", labels={"app": "agent", LABEL_TEMPLATE_HASH: pod_hash},
                                   creation_timestamp="2026-11-23T07:00:00Z"),
               spec=PodSpec(containers=[Container(name="agent", image="x")], node_name=node_name),
               status=PodStatus(phase=phase, conditions=[Condition(type="Ready", status="True" if ready else "False")]))


def creates(actions: Actions) -> list[Pod]:
    return [s.obj for s in actions.steps if isinstance(s, Create) and isinstance(s.obj, Pod)]


def deleted(actions: Actions) -> set[str]:
    return {s.name for s in actions.steps if isinstance(s, Delete)}


def status_of(actions: Actions) -> DaemonSet:
    updates = [s.obj for s in actions.steps if isinstance(s, Update)]
    assert len(updates) == 1 and isinstance(updates[0], DaemonSet)
    return updates[0]


def test_one_pod_bound_to_each_node() -> None:
    ds = daemonset()
    actions = reconcile_daemonset(ds, [node("n1"), node("n2"), node("n3")], [], T0)
    made = creates(actions)
    assert sorted(p.spec.node_name for p in made) == ["n1", "n2", "n3"]
    assert all(p.metadata.owner_references[0].kind == "DaemonSet" for p in made)
    assert all(p.metadata.owner_references[0].uid == "ds-uid" for p in made)
    assert status_of(actions).status.desired_number_scheduled == 3


def test_node_selector_and_affinity_pick_nodes() -> None:
    nodes = [node("arm", {"shoal.io/arch": "arm64", "zone": "a"}), node("x86", {"shoal.io/arch": "amd64"})]
    assert [p.spec.node_name for p in creates(reconcile_daemonset(
        daemonset(selector={"shoal.io/arch": "arm64"}), nodes, [], T0))] == ["arm"]
    term = NodeSelectorTerm(match_expressions=[LabelSelectorRequirement(key="zone", operator="Exists")])
    affinity = Affinity(node_affinity=NodeAffinity(
        required_during_scheduling_ignored_during_execution=NodeSelector(node_selector_terms=[term])))
    assert [p.spec.node_name for p in creates(reconcile_daemonset(daemonset(affinity=affinity), nodes, [], T0))] \
        == ["arm"]


def test_taints_need_tolerations_but_offline_and_cordoned_nodes_keep_their_pod() -> None:
    gpu = Taint(key="gpu", value="yes", effect="NoSchedule")
    spec = daemonset().spec.template.spec
    assert not node_wants_pod(spec, node("g", taints=[gpu]))
    tolerant = daemonset(tolerations=[Toleration(key="gpu", operator="Equal", value="yes")]).spec.template.spec
    assert node_wants_pod(tolerant, node("g", taints=[gpu]))
    # a NoSchedule taint added later does not evict; NoExecute does
    assert node_keeps_pod(spec, node("g", taints=[gpu]))
    assert not node_keeps_pod(spec, node("g", taints=[Taint(key="drain", effect="NoExecute")]))
    offline = node("off", taints=[Taint(key=TAINT_OFFLINE, effect="NoExecute")], phase=NodePhase.OFFLINE)
    cordoned = node("cor", taints=[Taint(key=TAINT_UNSCHEDULABLE, effect="NoSchedule")], unschedulable=True)
    ds = daemonset()
    pods = [pod_on(ds, "off", ready=False), pod_on(ds, "cor")]
    actions = reconcile_daemonset(ds, [offline, cordoned], pods, T0)
    assert deleted(actions) == set() and creates(actions) == []
    made = creates(reconcile_daemonset(ds, [offline, cordoned], [], T0))
    assert sorted(p.spec.node_name for p in made) == ["cor", "off"]
    assert any(t.key == TAINT_OFFLINE and t.toleration_seconds is None for t in made[0].spec.tolerations)


def test_node_that_stops_matching_or_disappears_loses_its_pod() -> None:
    ds = daemonset(selector={"role": "edge"})
    kept, moved, gone = pod_on(ds, "n1"), pod_on(ds, "n2"), pod_on(ds, "n3")
    actions = reconcile_daemonset(ds, [node("n1", {"role": "edge"}), node("n2", {"role": "core"})],
                                  [kept, moved, gone], T0)
    assert deleted(actions) == {moved.metadata.name, gone.metadata.name}
    assert creates(actions) == []
    assert status_of(actions).status.number_misscheduled == 1


def test_finished_and_duplicate_pods_are_replaced() -> None:
    ds = daemonset()
    failed = pod_on(ds, "n1", phase=PodPhase.FAILED)
    first, second = pod_on(ds, "n2"), pod_on(ds, "n2", ready=False)
    actions = reconcile_daemonset(ds, [node("n1"), node("n2")], [failed, first, second], T0)
    assert deleted(actions) == {failed.metadata.name, second.metadata.name}
    assert [p.spec.node_name for p in creates(actions)] == ["n1"]


def test_reconcile_twice_on_a_settled_set_changes_nothing() -> None:
    ds = daemonset()
    pods = [pod_on(ds, f"n{i}") for i in range(3)]
    first = reconcile_daemonset(ds, [node(f"n{i}") for i in range(3)], pods, T0)
    settled = status_of(first)
    again = reconcile_daemonset(settled, [node(f"n{i}") for i in range(3)], pods, T0)
    assert again.steps == ()


def _roll(unavailable: int | str, nodes: int, not_ready_old: int = 0) -> tuple[Actions, list[Pod]]:
    old_ds = daemonset("agent:1")
    new_ds = daemonset("agent:2", unavailable=unavailable)
    pods = [pod_on(old_ds, f"n{i:02d}", ready=i >= not_ready_old) for i in range(nodes)]
    return reconcile_daemonset(new_ds, [node(f"n{i:02d}") for i in range(nodes)], pods, T0), pods


def test_rolling_update_deletes_at_most_max_unavailable_ready_pods() -> None:
    actions, _ = _roll(2, 10)
    assert len(deleted(actions)) == 2 and creates(actions) == []
    actions, _ = _roll("25%", 10)  # 2.5 rounds up to 3
    assert len(deleted(actions)) == 3
    actions, _ = _roll(0, 4)  # 0 would never progress: at least 1
    assert len(deleted(actions)) == 1


def test_rolling_update_counts_pods_already_unavailable() -> None:
    actions, pods = _roll(2, 6, not_ready_old=2)  # two old pods already down: replace those, touch no ready one
    assert deleted(actions) == {pods[0].metadata.name, pods[1].metadata.name}
    new_ds = daemonset("agent:2", unavailable=2)
    nodes = [node(f"n{i:02d}") for i in range(4)]
    half = [pod_on(new_ds, "n00", ready=False), *(pod_on(daemonset("agent:1"), f"n{i:02d}") for i in range(1, 4))]
    assert len(deleted(reconcile_daemonset(new_ds, nodes, half, T0))) == 1  # 1 new pod not ready yet: 1 more


def test_rolling_update_finishes_with_every_node_updated() -> None:
    new_ds = daemonset("agent:2", unavailable=1)
    nodes = [node(f"n{i}") for i in range(3)]
    pods: list[Pod] = [pod_on(daemonset("agent:1"), f"n{i}") for i in range(3)]
    for _ in range(10):
        actions = reconcile_daemonset(new_ds, nodes, pods, T0)
        gone = deleted(actions)
        assert len(gone) <= 1
        pods = [p for p in pods if p.metadata.name not in gone]
        pods += [msgspec.structs.replace(p, status=pod_on(new_ds, "x").status) for p in creates(actions)]
        new_ds = next((s.obj for s in actions.steps if isinstance(s, Update) and isinstance(s.obj, DaemonSet)), new_ds)
    assert new_ds.status.updated_number_scheduled == 3 and new_ds.status.number_ready == 3
    assert {p.metadata.labels[LABEL_TEMPLATE_HASH] for p in pods} == {template_hash(new_ds.spec.template)}


def test_semantic_errors_name_the_field() -> None:
    assert daemonset_errors(daemonset()) == []
    bad = daemonset(unavailable="lots")
    bad = msgspec.structs.replace(bad, spec=msgspec.structs.replace(
        bad.spec, selector=LabelSelector(match_labels={"app": "other"})))
    assert sorted(e.path for e in daemonset_errors(bad)) == ["spec.template.metadata.labels",
                                                             "spec.updateStrategy.rollingUpdate.maxUnavailable"]
