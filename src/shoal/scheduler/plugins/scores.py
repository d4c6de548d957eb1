"""Score plugins: how much a feasible node suits a pod, each an integer in 0..100.

Integer arithmetic throughout, so the per-node (reference) and whole-fleet numpy (batch) forms
give identical numbers and identical ties. Static scores depend on the pod's class and the node;
dynamic ones on usage (allocation, images present); TopologySpread on the pod's owner group.
Policies weight them (policies.py). Must not filter or bind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from shoal.scheduler.plugins.filters import term_mask, term_matches, untolerated
from shoal.scheduler.podview import PodClass, PodView
from shoal.scheduler.policies import (
    BALANCED,
    ENERGY_AWARE,
    IMAGE_LOCALITY,
    LATENCY_AWARE,
    LEAST_ALLOCATED,
    MOST_ALLOCATED,
    NODE_AFFINITY,
    TAINT_TOLERATION,
    TOPOLOGY_SPREAD,
)
from shoal.scheduler.snapshot import ClusterSnapshot, NodeInfo, node_rtt
from shoal.scheduler.state import WorkState

_SOFT_EFFECTS = ("PreferNoSchedule",)
CPU, MEMORY = 0, 1  # column indices (snapshot.BASE_COLUMNS)


@dataclass(frozen=True)
class StaticScore:
    name: str
    score: Callable[[PodClass, NodeInfo], int]
    scores: Callable[[PodClass, ClusterSnapshot], np.ndarray]


def _latency(cls: PodClass, node: NodeInfo) -> int:
    return 100 - min(100, max(0, int(node_rtt(node, cls.zone)))) if cls.zone else 0


def _latencies(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray:
    if not cls.zone:
        return np.zeros(len(snap), dtype=np.int64)
    return 100 - np.clip(snap.rtt_column(cls.zone).astype(np.int64), 0, 100)


def _affinity_total(cls: PodClass) -> int:
    return sum(max(0, weight) for weight, _ in cls.preferred_terms)


def _affinity(cls: PodClass, node: NodeInfo) -> int:
    total = _affinity_total(cls)
    if total == 0:
        return 0
    matched = sum(max(0, w) for w, term in cls.preferred_terms if term_matches(term, node.labels))
    return 100 * matched // total


def _affinities(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray:
    total = _affinity_total(cls)
    matched = np.zeros(len(snap), dtype=np.int64)
    if total == 0:
        return matched
    for weight, term in cls.preferred_terms:
        matched += max(0, weight) * term_mask(term, snap)
    return 100 * matched // total


def _taint_score(cls: PodClass, node: NodeInfo) -> int:
    return 100 // (1 + untolerated(cls.tolerations, node.taints, _SOFT_EFFECTS))


def _taint_scores(cls: PodClass, snap: ClusterSnapshot) -> np.ndarray:
    per_set = np.array([100 // (1 + untolerated(cls.tolerations, taints, _SOFT_EFFECTS))
                        for taints in snap.taint_sets], dtype=np.int64)
    return per_set[snap.taint_idx]


STATIC_SCORES: Mapping[str, StaticScore] = {
    LATENCY_AWARE: StaticScore(LATENCY_AWARE, _latency, _latencies),
    ENERGY_AWARE: StaticScore(ENERGY_AWARE, lambda cls, node: node.energy_score,
                              lambda cls, snap: snap.energy),
    NODE_AFFINITY: StaticScore(NODE_AFFINITY, _affinity, _affinities),
    TAINT_TOLERATION: StaticScore(TAINT_TOLERATION, _taint_score, _taint_scores),
}
DYNAMIC_SCORES = (LEAST_ALLOCATED, MOST_ALLOCATED, BALANCED, IMAGE_LOCALITY)


def _pct(after: int, alloc: int) -> int:
    return min(100, after * 100 // alloc) if alloc > 0 else 100


def dynamic_scores(cls: PodClass, vector: np.ndarray, state: WorkState, j: int) -> dict[str, int]:
    """The usage-dependent scores of node ``j`` as if the pod were placed there."""
    used, alloc = state.used, state.alloc
    cpu = _pct(int(used[CPU, j]) + int(vector[CPU]), int(alloc[CPU, j]))
    mem = _pct(int(used[MEMORY, j]) + int(vector[MEMORY]), int(alloc[MEMORY, j]))
    present = sum(1 for image in cls.images if state.image_mask(image)[j])
    return {LEAST_ALLOCATED: (200 - cpu - mem) // 2, MOST_ALLOCATED: (cpu + mem) // 2,
            BALANCED: 100 - abs(cpu - mem), IMAGE_LOCALITY: 100 * present // len(cls.images) if cls.images else 0}


def _pcts(after: np.ndarray, alloc: np.ndarray) -> np.ndarray:
    return np.where(alloc > 0, np.minimum(100, after * 100 // np.maximum(alloc, 1)), 100)


def weighted_dynamic(cls: PodClass, vector: np.ndarray, state: WorkState, idx: np.ndarray | None,
                     weights: Mapping[str, int]) -> np.ndarray:
    """Sum of weight × dynamic score for all nodes (or those in ``idx``)."""
    n = len(state.nodes) if idx is None else len(idx)
    total = np.zeros(n, dtype=np.int64)
    least, most, balanced = (weights.get(name, 0) for name in (LEAST_ALLOCATED, MOST_ALLOCATED, BALANCED))
    if least or most or balanced:
        used = state.used if idx is None else state.used[:2, idx]
        alloc = state.alloc if idx is None else state.alloc[:2, idx]
        cpu = _pcts(used[CPU] + vector[CPU], alloc[CPU])
        mem = _pcts(used[MEMORY] + vector[MEMORY], alloc[MEMORY])
        if least:
            total += least * ((200 - cpu - mem) // 2)
        if most:
            total += most * ((cpu + mem) // 2)
        if balanced:
            total += balanced * (100 - np.abs(cpu - mem))
    image_weight = weights.get(IMAGE_LOCALITY, 0)
    if image_weight and cls.images:
        present = np.zeros(n, dtype=np.int64)
        for image in cls.images:
            mask = state.image_mask(image)
            present += mask if idx is None else mask[idx]
        total += image_weight * (100 * present // len(cls.images))
    return total


def spread_score(view: PodView, state: WorkState, j: int) -> int:
    """Fewer pods of the same owner on the node and in its zone score higher (100 with none)."""
    if view.owner is None:
        return 100
    per_node, per_zone = state.owner_counts(view.owner)
    zone_count = int(per_zone[state.snapshot.zone_idx[j]])
    return (100 // (1 + int(per_node[j])) + 100 // (1 + zone_count)) // 2


def spread_scores(owner: str, state: WorkState) -> np.ndarray:
    per_node, per_zone = state.owner_counts(owner)
    return (100 // (1 + per_node) + 100 // (1 + per_zone[state.snapshot.zone_idx])) // 2  # type: ignore[no-any-return]


def plugin_scores(view: PodView, vector: np.ndarray, state: WorkState, j: int) -> dict[str, int]:
    """Every weighted plugin's score of node ``j`` for this pod (what ``describe`` shows)."""
    weights = view.cls.policy.weights
    node = state.nodes[j]
    out = {name: plugin.score(view.cls, node) for name, plugin in STATIC_SCORES.items() if name in weights}
    if any(name in weights for name in DYNAMIC_SCORES):
        out.update((k, v) for k, v in dynamic_scores(view.cls, vector, state, j).items() if k in weights)
    if TOPOLOGY_SPREAD in weights:
        out[TOPOLOGY_SPREAD] = spread_score(view, state, j)
    return out


def total_score(view: PodView, scores: Mapping[str, int]) -> int:
    weights = view.cls.policy.weights
    return sum(weights[name] * value for name, value in scores.items())
