"""Node liveness: the in-memory lease table and the pure node-lifecycle reconcile.

Heartbeats never touch the store: the server renews a ``LeaseTable`` entry per heartbeat.
``reconcile_node`` turns (node, last heartbeat, server start, now, its pods) into Actions:
8 s of silence — counted from the latest of the last heartbeat, the server's start and the node's
creation, so a restarted server never declares live nodes Offline — makes the node Offline
(Ready=False, ``node.shoal.io/offline:NoExecute`` taint stamped with the time, a NodeOffline
event). Deployment pods on an Offline node are deleted once their toleration of that taint
(default 0 s) has passed, so they are replaced elsewhere; bare and DaemonSet pods stay and are
marked Unknown/NodeLost. A node whose phase does not change causes no store write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import msgspec

from shoal.controllers.actions import (
    Action,
    Actions,
    EmitEvent,
    EventType,
    Key,
    Result,
    Update,
    delete_of,
    parse_time,
    ref_of,
    rfc3339,
    sooner,
)
from shoal.controllers.cache import Cache
from shoal.controllers.runner import Enqueue, KeyMapper, own_key
from shoal.model import Condition, Node, NodePhase, Object, Pod, PodPhase, Taint, set_condition
from shoal.model.node import TAINT_OFFLINE

GRACE_SECONDS = 8.0
MOVABLE_OWNER_KINDS = ("Deployment",)
NODE_LOST = "NodeLost"
_EPSILON = 0.01


class LeaseTable:
    """Last heartbeat per node, in memory. ``renew`` reports (and tells subscribers) when a node
    that was not live — never seen since the server started, or silent past ``grace`` — beats."""

    def __init__(self, started_at: datetime, grace: float = GRACE_SECONDS) -> None:
        self.started_at = started_at
        self.grace = grace
        self._seen: dict[str, datetime] = {}
        self._listeners: list[Callable[[str], None]] = []

    def renew(self, node: str, now: datetime) -> bool:
        previous = self._seen.get(node)
        self._seen[node] = now if previous is None else max(previous, now)
        revived = previous is None or (now - previous).total_seconds() >= self.grace
        if revived:
            for listener in list(self._listeners):
                listener(node)
        return revived

    def last_seen(self, node: str) -> datetime | None:
        return self._seen.get(node)

    def forget(self, node: str) -> None:
        self._seen.pop(node, None)

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def __len__(self) -> int:
        return len(self._seen)


def offline_toleration(pod: Pod) -> float | None:
    """Seconds ``pod`` tolerates an offline node (None = forever); 0 without a matching toleration."""
    best: float | None = 0.0
    for tol in pod.spec.tolerations:
        if tol.effect not in ("", "NoExecute"):
            continue
        exists = tol.operator == "Exists" and tol.key in ("", TAINT_OFFLINE)
        equal = tol.operator in ("", "Equal") and tol.key == TAINT_OFFLINE and tol.value == ""
        if not (exists or equal):
            continue
        if tol.toleration_seconds is None:
            return None
        best = max(best or 0.0, float(tol.toleration_seconds))
    return best


def _target_phase(node: Node, heartbeat: datetime | None, silent: float, grace: float) -> NodePhase:
    current = node.status.phase
    if silent >= grace:
        return NodePhase.OFFLINE
    cordoned = node.spec.unschedulable
    if heartbeat is None:  # nothing heard since the server started: keep what is stored, apply cordon
        if current == NodePhase.ONLINE and cordoned:
            return NodePhase.MAINTENANCE
        if current == NodePhase.MAINTENANCE and not cordoned:
            return NodePhase.ONLINE
        return current
    return NodePhase.MAINTENANCE if cordoned else NodePhase.ONLINE


def _ready(online: bool, now: datetime) -> Condition:
    if online:
        return Condition(type="Ready", status="True", reason="NodeReady", message="node is heartbeating",
                         last_transition_time=rfc3339(now))
    return Condition(type="Ready", status="False", reason="NodeStatusUnknown", message="node stopped heartbeating",
                     last_transition_time=rfc3339(now))


def _phase_events(node: Node, old: NodePhase, new: NodePhase, grace: float) -> list[Action]:
    me, name = ref_of(node), node.metadata.name
    if new == NodePhase.OFFLINE:
        return [EmitEvent(me, "NodeOffline", f"node {name} stopped heartbeating for {grace:g}s; it is Offline",
                          EventType.WARNING)]
    events: list[Action] = []
    if old == NodePhase.MAINTENANCE and new == NodePhase.ONLINE:
        events.append(EmitEvent(me, "NodeOnline", f"node {name} is schedulable again"))
    elif old not in (NodePhase.ONLINE, NodePhase.MAINTENANCE):
        events.append(EmitEvent(me, "NodeOnline", f"node {name} is Online"))
    if new == NodePhase.MAINTENANCE:
        events.append(EmitEvent(me, "NodeMaintenance", f"node {name} is cordoned; no new pods will be placed"))
    return events


def reconcile_node(node: Node, lease_last_seen: datetime | None, server_started_at: datetime, now: datetime,
                   pods_on_node: Sequence[Pod], grace: float = GRACE_SECONDS) -> Actions:
    """One step of ``node``'s lifecycle; see the module docstring for the rules."""
    moments = [t for t in (lease_last_seen, server_started_at, parse_time(node.metadata.creation_timestamp)) if t]
    silent = (now - max(moments)).total_seconds()
    old_phase = node.status.phase
    phase = _target_phase(node, lease_last_seen, silent, grace)
    offline = phase == NodePhase.OFFLINE
    steps: list[Action] = []
    requeue: float | None = None if offline else max(grace - silent, 0.0) + _EPSILON

    taint = next((t for t in node.spec.taints if t.key == TAINT_OFFLINE), None)
    taints = [t for t in node.spec.taints if t.key != TAINT_OFFLINE]
    if offline:
        if taint is None or taint.effect != "NoExecute":
            taint = Taint(key=TAINT_OFFLINE, effect="NoExecute", time_added=rfc3339(now))
        taints.append(taint)
    status = node.status
    if phase != old_phase:
        conditions = set_condition(status.conditions, _ready(not offline, now))
        status = msgspec.structs.replace(status, phase=phase, conditions=conditions)
    updated = msgspec.structs.replace(node, spec=msgspec.structs.replace(node.spec, taints=taints), status=status)
    if updated != node:
        steps.append(Update(updated))
    if phase != old_phase:
        steps.extend(_phase_events(node, old_phase, phase, grace))
    if offline:
        offline_since = (parse_time(taint.time_added) if taint else None) or now
        pod_steps, pod_requeue = _offline_pods(node, pods_on_node, offline_since, now)
        steps.extend(pod_steps)
        requeue = sooner(requeue, pod_requeue)
    return Actions(tuple(steps), Result(requeue))


def _owner_kind(pod: Pod) -> str:
    for ref in pod.metadata.owner_references:
        if ref.controller:
            return ref.kind
    return ""


def _offline_pods(node: Node, pods: Sequence[Pod], offline_since: datetime,
                  now: datetime) -> tuple[list[Action], float | None]:
    steps: list[Action] = []
    requeue: float | None = None
    for pod in pods:
        if pod.metadata.deletion_timestamp or pod.status.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED):
            continue
        if _owner_kind(pod) in MOVABLE_OWNER_KINDS:
            tolerated = offline_toleration(pod)
            if tolerated is not None:
                deadline = offline_since + timedelta(seconds=tolerated)
                if now >= deadline:
                    steps.append(delete_of(pod))
                    steps.append(EmitEvent(ref_of(pod), "Evicted",
                                           f"node {node.metadata.name} is Offline; pod deleted to be replaced",
                                           EventType.WARNING))
                    continue
                requeue = sooner(requeue, (deadline - now).total_seconds() + _EPSILON)
        if pod.status.phase != PodPhase.UNKNOWN or pod.status.reason != NODE_LOST:
            not_ready = Condition(type="Ready", status="False", reason=NODE_LOST,
                                  message=f"node {node.metadata.name} is Offline", last_transition_time=rfc3339(now))
            status = msgspec.structs.replace(
                pod.status, phase=PodPhase.UNKNOWN, reason=NODE_LOST,
                message=f"node {node.metadata.name} stopped heartbeating",
                conditions=set_condition(pod.status.conditions, not_ready))
            steps.append(Update(msgspec.structs.replace(pod, status=status)))
            steps.append(EmitEvent(ref_of(pod), NODE_LOST, f"node {node.metadata.name} is Offline; pod status is "
                                   "Unknown", EventType.WARNING))
    return steps, requeue


class NodeLifecycle:
    """Adapts ``reconcile_node`` to the runner; heartbeats that revive a node enqueue it at once."""

    name = "node-lifecycle"
    kind = "Node"

    def __init__(self, leases: LeaseTable, grace: float = GRACE_SECONDS) -> None:
        self._leases = leases
        self._grace = grace

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"Node": own_key, "Pod": self._pod_node}

    @staticmethod
    def _pod_node(obj: Object, cache: Cache) -> list[Key]:
        if not isinstance(obj, Pod) or not obj.spec.node_name:
            return []
        key: Key = ("Node", "", obj.spec.node_name)
        node = cache.get(key)
        return [key] if isinstance(node, Node) and node.status.phase == NodePhase.OFFLINE else []

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        node = cache.get(key)
        if not isinstance(node, Node):
            return Actions()
        pods = cache.pods_on_node(node.metadata.name)
        return reconcile_node(node, self._leases.last_seen(node.metadata.name), self._leases.started_at, now,
                              pods, self._grace)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return self._leases.subscribe(lambda name: enqueue(("Node", "", name)))


