"""reconcile_node and LeaseTable as pure logic: Offline after 8 s, restarts, cordon, evictions."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.controllers import Delete, EmitEvent, LeaseTable, Update, offline_toleration, reconcile_node
from shoal.model import Node, NodePhase, OwnerReference, Pod, PodPhase, Taint, Toleration, condition
from shoal.model.node import TAINT_OFFLINE

from .helpers import T0, bare_pod, online_node, ready_status

STARTED = T0 - timedelta(minutes=10)


def at(seconds: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(seconds=seconds)


def node_update(actions) -> Node | None:  # type: ignore[no-untyped-def]
    found = [s.obj for s in actions.steps if isinstance(s, Update) and isinstance(s.obj, Node)]
    return found[0] if found else None


def reasons(actions) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.reason for s in actions.steps if isinstance(s, EmitEvent)]


def owned(name: str, kind: str, node: str = "n1", tolerations: list[Toleration] | None = None) -> Pod:
    pod = bare_pod(name, node)
    ref = OwnerReference(kind=kind, name="owner", uid=f"{kind}-uid", controller=True)
    return msgspec.structs.replace(
        pod, metadata=msgspec.structs.replace(pod.metadata, owner_references=[ref], resource_version="7"),
        spec=msgspec.structs.replace(pod.spec, tolerations=tolerations or []), status=ready_status())


def test_live_node_causes_no_writes() -> None:
    actions = reconcile_node(online_node(), T0, STARTED, at(7.9), [])
    assert actions.steps == ()
    assert actions.result.requeue_after == pytest.approx(0.1, abs=0.02)


def test_silent_node_goes_offline_with_condition_taint_and_event() -> None:
    actions = reconcile_node(online_node(), T0, STARTED, at(8), [])
    node = node_update(actions)
    assert node is not None and node.status.phase == NodePhase.OFFLINE
    ready = condition(node.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason, ready.message) == (
        "False", "NodeStatusUnknown", "node stopped heartbeating")
    (taint,) = node.spec.taints
    assert (taint.key, taint.effect, taint.time_added) == (TAINT_OFFLINE, "NoExecute", "2026-11-23T08:00:08Z")
    assert node.metadata.resource_version == "3"
    assert reasons(actions) == ["NodeOffline"]
    assert reconcile_node(node, T0, STARTED, at(30), []).steps == ()  # stays Offline without writes


def test_server_restart_counts_grace_from_server_start() -> None:
    started = T0
    stored_online = online_node()
    assert reconcile_node(stored_online, None, started, at(7), []).writes == ()
    offline = node_update(reconcile_node(stored_online, None, started, at(8.5), []))
    assert offline is not None and offline.status.phase == NodePhase.OFFLINE


def test_stale_stored_heartbeat_does_not_matter_after_restart() -> None:
    node = online_node()
    node = msgspec.structs.replace(node, status=msgspec.structs.replace(
        node.status, last_heartbeat_time="2026-11-20T00:00:00Z"))
    assert reconcile_node(node, None, T0, at(1), []).steps == ()


def test_new_node_grace_counts_from_creation() -> None:
    node = online_node(phase=NodePhase.PENDING, created="2026-11-23T08:00:05Z")
    assert reconcile_node(node, None, STARTED, at(10), []).steps == ()
    went = node_update(reconcile_node(node, None, STARTED, at(13.5), []))
    assert went is not None and went.status.phase == NodePhase.OFFLINE


def test_heartbeat_resumes_online_and_removes_taint() -> None:
    offline = node_update(reconcile_node(online_node(), T0, STARTED, at(9), []))
    assert offline is not None
    back = reconcile_node(offline, at(20), STARTED, at(20.5), [])
    node = node_update(back)
    assert node is not None and node.status.phase == NodePhase.ONLINE and node.spec.taints == []
    ready = condition(node.status.conditions, "Ready")
    assert ready is not None and ready.status == "True"
    assert reasons(back) == ["NodeOnline"]


def test_heartbeat_resumes_on_cordoned_node_goes_to_maintenance() -> None:
    offline = node_update(reconcile_node(online_node(unschedulable=True), T0, STARTED, at(9), []))
    assert offline is not None
    node = node_update(reconcile_node(offline, at(20), STARTED, at(20), []))
    assert node is not None and node.status.phase == NodePhase.MAINTENANCE


def test_cordon_and_uncordon() -> None:
    cordoned = reconcile_node(online_node(unschedulable=True), T0, STARTED, at(1), [])
    node = node_update(cordoned)
    assert node is not None and node.status.phase == NodePhase.MAINTENANCE
    assert reasons(cordoned) == ["NodeMaintenance"]
    uncordoned = msgspec.structs.replace(node, spec=msgspec.structs.replace(node.spec, unschedulable=False))
    again = reconcile_node(uncordoned, T0, STARTED, at(2), [])
    back = node_update(again)
    assert back is not None and back.status.phase == NodePhase.ONLINE and reasons(again) == ["NodeOnline"]


def test_offline_node_deletes_deployment_pods_and_keeps_bare_and_daemonset_pods() -> None:
    pods = [owned("web-1", "Deployment"), owned("ds-1", "DaemonSet"), msgspec.structs.replace(
        bare_pod("bare", "n1"), status=ready_status())]
    actions = reconcile_node(online_node(), T0, STARTED, at(8), pods)
    assert [s.name for s in actions.steps if isinstance(s, Delete)] == ["web-1"]
    marked = {s.obj.metadata.name: s.obj for s in actions.steps if isinstance(s, Update) and isinstance(s.obj, Pod)}
    assert sorted(marked) == ["bare", "ds-1"]
    for pod in marked.values():
        assert (pod.status.phase, pod.status.reason) == (PodPhase.UNKNOWN, "NodeLost")
        ready = condition(pod.status.conditions, "Ready")
        assert ready is not None and ready.status == "False"
    again = reconcile_node(node_update(actions), T0, STARTED, at(9), list(marked.values()))  # type: ignore[arg-type]
    assert again.steps == ()  # already marked: nothing to write


def test_toleration_delays_eviction_from_taint_time() -> None:
    tol = [Toleration(key=TAINT_OFFLINE, operator="Exists", effect="NoExecute", toleration_seconds=30)]
    pod = owned("web-1", "Deployment", tolerations=tol)
    first = reconcile_node(online_node(), T0, STARTED, at(8), [pod])
    offline = node_update(first)
    assert offline is not None
    assert not [s for s in first.steps if isinstance(s, Delete)]
    assert first.result.requeue_after == pytest.approx(30, abs=0.1)
    mid = reconcile_node(offline, T0, STARTED, at(37), [pod])
    assert not [s for s in mid.steps if isinstance(s, Delete)]
    assert mid.result.requeue_after == pytest.approx(1, abs=0.1)
    late = reconcile_node(offline, T0, STARTED, at(38), [pod])
    assert [s.name for s in late.steps if isinstance(s, Delete)] == ["web-1"]


def test_offline_toleration_matching() -> None:
    def tolerating(*tols: Toleration) -> Pod:
        return owned("p", "Deployment", tolerations=list(tols))

    assert offline_toleration(tolerating()) == 0
    assert offline_toleration(tolerating(Toleration(operator="Exists"))) is None  # tolerates everything forever
    assert offline_toleration(tolerating(Toleration(key=TAINT_OFFLINE, operator="Exists",
                                                    toleration_seconds=60))) == 60
    assert offline_toleration(tolerating(Toleration(key="other", operator="Exists", toleration_seconds=60))) == 0
    assert offline_toleration(tolerating(Toleration(key=TAINT_OFFLINE, operator="Exists", effect="NoSchedule",
                                                    toleration_seconds=60))) == 0


def test_repairs_missing_taint_on_offline_node() -> None:
    node = online_node(phase=NodePhase.OFFLINE)
    fixed = node_update(reconcile_node(node, T0, STARTED, at(20), []))
    assert fixed is not None and [t.key for t in fixed.spec.taints] == [TAINT_OFFLINE]
    keeps_time = msgspec.structs.replace(node, spec=msgspec.structs.replace(
        node.spec, taints=[Taint(key=TAINT_OFFLINE, effect="NoExecute", time_added="2026-11-23T08:00:01Z")]))
    assert reconcile_node(keeps_time, T0, STARTED, at(20), []).steps == ()


@settings(max_examples=300, deadline=None)
@given(beats=st.lists(st.floats(0, 100), max_size=20), check=st.floats(0, 120), restart=st.floats(0, 100))
def test_offline_exactly_when_silent_for_grace(beats: list[float], check: float, restart: float) -> None:
    started = at(restart)
    seen = [b for b in beats if restart <= b <= check]
    last = at(max(seen)) if seen else None
    node = online_node(created="2026-11-23T07:00:00Z")
    actions = reconcile_node(node, last, started, at(check), [])
    since = max(max(seen) if seen else restart, restart)
    went_offline = (u := node_update(actions)) is not None and u.status.phase == NodePhase.OFFLINE
    assert went_offline == (check - since >= 8)


def test_lease_table_reports_revivals() -> None:
    leases = LeaseTable(started_at=T0)
    woken: list[str] = []
    unsubscribe = leases.subscribe(woken.append)
    assert leases.renew("n1", at(0)) is True
    assert leases.renew("n1", at(2)) is False
    assert leases.last_seen("n1") == at(2)
    assert leases.renew("n1", at(1)) is False and leases.last_seen("n1") == at(2)  # never goes backwards
    assert leases.renew("n1", at(11)) is True
    unsubscribe()
    leases.renew("n2", at(0))
    assert woken == ["n1", "n1"]
    assert leases.started_at == T0 and len(leases) == 2
