"""Filter plugins: which nodes a pod may go to, and the reason each other node is rejected.

Static filters depend only on the pod's class and the node (phase, runtime, arch, selectors and
affinity, taints, latency, battery); dynamic ones on usage that changes as pods bind (host ports,
resources). Each has a scalar form for one node and a numpy form for all nodes; they must agree.
Must not score or bind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shoal.scheduler.podview import Expr, PodClass, TolerationView
from shoal.scheduler.reasons import Reason, insufficient
from shoal.scheduler.snapshot import ClusterSnapshot, NodeInfo, TaintView, node_rtt
from shoal.scheduler.state import WorkState

_HARD_EFFECTS = ("NoSchedule", "NoExecute")


def tolerates(toleration: TolerationView, taint: TaintView) -> bool:
    key, value, effect = taint
    if toleration.effect and toleration.effect != effect:
        return False
    if toleration.operator == "Exists":
        return not toleration.key or toleration.key == key
    return toleration.key == key and toleration.value == value


def untolerated(tolerations: Sequence[TolerationView], taints: Sequence[TaintView],
                effects: Sequence[str]) -> int:
    """How many of ``taints`` with one of ``effects`` no toleration tolerates."""
    return sum(1 for taint in taints if taint[2] in effects
               and not any(tolerates(t, taint) for t in tolerations))


def expr_matches(expr: Expr, labels: Mapping[str, str]) -> bool:
    key, op, values = expr
    value = labels.get(key)
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value not in values
    if op == "Exists":
        return value is not None
    return op == "DoesNotExist" and value is None


def term_matches(term: tuple[Expr, ...], labels: Mapping[str, str]) -> bool:
    """A node selector term: all expressions hold (an empty term matches nothing, as in Kubernetes)."""
    return bool(term) and all(expr_matches(expr, labels) for expr in term)


def expr_mask(expr: Expr, snapshot: ClusterSnapshot) -> np.ndarray:
    key, op, values = expr
    codes, column = snapshot.label_column(key)
    if op in ("In", "NotIn"):
        inside = np.isin(column, [codes[v] for v in values if v in codes])
        return inside if op == "In" else ~inside
    if op == "Exists":
        return column >= 0
    if op == "DoesNotExist":
        return column < 0
    return np.zeros(len(snapshot), dtype=bool)


def term_mask(term: tuple[Expr, ...], snapshot: ClusterSnapshot) -> np.ndarray:
    mask = np.full(len(snapshot), bool(term))
    for expr in term:
        mask &= expr_mask(expr, snapshot)
    return mask


@dataclass(frozen=True)
class StaticFilter:
    """``check`` answers for one node; ``mask`` for all nodes at once (None: every node passes)."""

    name: str
    reason: Reason
    check: Callable[[PodClass, NodeInfo], bool]
    mask: Callable[[PodClass, ClusterSnapshot], np.ndarray | None]


def _ready_mask(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray | None:
    return np.asarray(snap.phase_reason == 0, dtype=bool)


def _runtime_mask(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray | None:
    mask = snap.runtime_mask(cls.runtime)
    return None if mask.all() else mask


def _arch_check(cls: PodClass, node: NodeInfo) -> bool:
    return cls.arch is None or cls.arch == node.arch


def _arch_mask(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray | None:
    return None if cls.arch is None else np.asarray(snap.arch == cls.arch, dtype=bool)


def _selector_check(cls: PodClass, node: NodeInfo) -> bool:
    if any(node.labels.get(k) != v for k, v in cls.selector):
        return False
    return not cls.required_terms or any(term_matches(term, node.labels) for term in cls.required_terms)


def _selector_mask(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray | None:
    if not cls.selector and not cls.required_terms:
        return None
    mask = np.ones(len(snap), dtype=bool)
    for key, value in cls.selector:
        mask &= expr_mask((key, "In", frozenset((value,))), snap)
    if cls.required_terms:
        any_term = np.zeros(len(snap), dtype=bool)
        for term in cls.required_terms:
            any_term |= term_mask(term, snap)
        mask &= any_term
    return mask


def _taint_check(cls: PodClass, node: NodeInfo) -> bool:
    return untolerated(cls.tolerations, node.taints, _HARD_EFFECTS) == 0


def _taint_mask(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray | None:
    per_set = np.array([untolerated(cls.tolerations, taints, _HARD_EFFECTS) == 0 for taints in snap.taint_sets],
                       dtype=bool)
    return None if per_set.all() else per_set[snap.taint_idx]


def _latency_check(cls: PodClass, node: NodeInfo) -> bool:
    return cls.max_latency_ms is None or not cls.zone or node_rtt(node, cls.zone) <= cls.max_latency_ms


def _latency_mask(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray | None:
    if cls.max_latency_ms is None or not cls.zone:
        return None
    return snap.rtt_column(cls.zone) <= cls.max_latency_ms


def _battery_check(cls: PodClass, node: NodeInfo) -> bool:
    return cls.min_battery_percent is None or node.battery_percent >= cls.min_battery_percent


def _battery_mask(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray | None:
    if cls.min_battery_percent is None:
        return None
    return np.asarray(snap.battery >= cls.min_battery_percent, dtype=bool)


STATIC_FILTERS: tuple[StaticFilter, ...] = (
    StaticFilter("NodeReady", Reason.NOT_READY, lambda cls, node: node.not_ready is None, _ready_mask),
    StaticFilter("NodeRuntime", Reason.RUNTIME, lambda cls, node: cls.runtime in node.runtimes, _runtime_mask),
    StaticFilter("NodeArch", Reason.ARCH, _arch_check, _arch_mask),
    StaticFilter("NodeAffinity", Reason.SELECTOR, _selector_check, _selector_mask),
    StaticFilter("TaintToleration", Reason.TAINT, _taint_check, _taint_mask),
    StaticFilter("LatencyBound", Reason.LATENCY, _latency_check, _latency_mask),
    StaticFilter("BatteryMinimum", Reason.BATTERY, _battery_check, _battery_mask),
)


def static_failure(cls: PodClass, node: NodeInfo) -> str | None:
    """The first static filter ``node`` fails for ``cls`` (its reason), or None."""
    for plugin in STATIC_FILTERS:
        if not plugin.check(cls, node):
            return node.not_ready if plugin.name == "NodeReady" else plugin.reason
    return None


def static_codes(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray:
    """Per node: 0 when every static filter passes, else 1 + index of the first that fails."""
    codes = np.zeros(len(snap), dtype=np.int8)
    ok = np.ones(len(snap), dtype=bool)
    for number, plugin in enumerate(STATIC_FILTERS, start=1):
        mask = plugin.mask(cls, snap)
        if mask is not None:
            codes[ok & ~mask] = number
            ok &= mask
    return codes


def dynamic_failures(cls: PodClass, vector: np.ndarray, state: WorkState, j: int) -> list[str]:
    """Why node ``j`` cannot take the pod now: taken host ports, else each resource that is short."""
    if any(state.port_mask(port)[j] for port in cls.host_ports):
        return [Reason.PORTS]
    used, alloc = state.used, state.alloc
    return [insufficient(state.columns[c]) for c in np.flatnonzero(vector)
            if int(used[c, j]) + int(vector[c]) > int(alloc[c, j])]


def dynamic_mask(cls: PodClass, vector: np.ndarray, state: WorkState, idx: np.ndarray | None) -> np.ndarray:
    """Nodes (all, or those in ``idx``) where the pod's ports are free and its requests fit."""
    used = state.used if idx is None else state.used[:, idx]
    alloc = state.alloc if idx is None else state.alloc[:, idx]
    columns = np.flatnonzero(vector)
    ok = np.all(used[columns] + vector[columns, None] <= alloc[columns], axis=0)
    for port in cls.host_ports:
        taken = state.port_mask(port)
        ok &= ~(taken if idx is None else taken[idx])
    return ok  # type: ignore[no-any-return]
