"""The batch placer: each pod against all nodes at once with numpy, per equivalence class.

Static filters and scores run once per pod class per call. Each class caches its total score per
node (a large negative number where the pod does not fit); after a binding only the changed
rows (from the state's change log) are recomputed, so a pod costs a refresh of a few rows and
one argmax over the fleet. TopologySpread is added per pod from per-owner node and zone
counters. Must give exactly the reference placer's answers (tests/unit/scheduler).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoal.scheduler.plugins.filters import STATIC_FILTERS, dynamic_failures, dynamic_mask, static_codes
from shoal.scheduler.plugins.scores import (
    STATIC_SCORES,
    dynamic_scores,
    spread_scores,
    weighted_dynamic,
)
from shoal.scheduler.podview import PodClass, PodView
from shoal.scheduler.policies import TOPOLOGY_SPREAD, Mode
from shoal.scheduler.reasons import Reason, insufficient
from shoal.scheduler.state import WorkState

INFEASIBLE = -(1 << 60)
SCALAR_REFRESH_MAX = 2  # refresh this many changed rows one by one; more go through numpy
SPREAD_REFRESH_MAX = 32  # owner changes after which the whole spread column is recomputed


@dataclass
class _ClassScores:
    vector: np.ndarray
    codes: np.ndarray
    static_ok: np.ndarray
    static: np.ndarray
    score: np.ndarray
    log_position: int


class BatchPlacer:
    def __init__(self, state: WorkState) -> None:
        self.state = state
        self._classes: dict[int, _ClassScores] = {}
        self._keep: list[PodClass] = []  # keeps id() keys valid for the call
        self._spreads: dict[tuple[str, int], tuple[np.ndarray, list[int]]] = {}  # (owner, weight) → ...
        self._buffer = np.empty(len(state.nodes), dtype=np.int64)
        self._zone_members: dict[int, np.ndarray] = {}

    def _build(self, cls: PodClass, vector: np.ndarray) -> _ClassScores:
        snap = self.state.snapshot
        codes = static_codes(cls, snap)
        static_ok = codes == 0
        static = np.zeros(len(snap), dtype=np.int64)
        for name, weight in cls.policy.weights.items():
            plugin = STATIC_SCORES.get(name)
            if plugin is not None:
                static += weight * plugin.scores(cls, snap)
        entry = _ClassScores(vector, codes, static_ok, static, np.empty(len(snap), dtype=np.int64),
                             len(self.state.log))
        self._refresh_rows(cls, entry, None)
        self._keep.append(cls)
        return entry

    def _refresh_rows(self, cls: PodClass, entry: _ClassScores, idx: np.ndarray | None) -> None:
        state, weights = self.state, cls.policy.weights
        ok = dynamic_mask(cls, entry.vector, state, idx)
        ok &= entry.static_ok if idx is None else entry.static_ok[idx]
        total = (entry.static if idx is None else entry.static[idx]) + weighted_dynamic(
            cls, entry.vector, state, idx, weights)
        if idx is None:
            entry.score[:] = np.where(ok, total, INFEASIBLE)
        else:
            entry.score[idx] = np.where(ok, total, INFEASIBLE)

    def _refresh_row(self, cls: PodClass, entry: _ClassScores, j: int) -> None:
        if not entry.static_ok[j] or dynamic_failures(cls, entry.vector, self.state, j):
            entry.score[j] = INFEASIBLE
            return
        weights = cls.policy.weights
        dynamic = dynamic_scores(cls, entry.vector, self.state, j)
        entry.score[j] = int(entry.static[j]) + sum(weights.get(k, 0) * v for k, v in dynamic.items())

    def _scores(self, cls: PodClass, vector: np.ndarray) -> _ClassScores:
        entry = self._classes.get(id(cls))
        if entry is None:
            entry = self._classes[id(cls)] = self._build(cls, vector)
            return entry
        log = self.state.log
        if entry.log_position < len(log):
            changed = set(log[entry.log_position:])
            entry.log_position = len(log)
            if len(changed) <= SCALAR_REFRESH_MAX:
                for j in changed:
                    self._refresh_row(cls, entry, j)
            else:
                self._refresh_rows(cls, entry, np.fromiter(sorted(changed), dtype=np.intp, count=len(changed)))
        return entry

    def _spread(self, owner: str, weight: int) -> np.ndarray:
        """weight × TopologySpread of every node for ``owner``'s next pod, refreshing only changed zones."""
        state = self.state
        changes = state.owner_log.get(owner, [])
        cached = self._spreads.get((owner, weight))
        if cached is None or len(changes) - cached[1][0] > SPREAD_REFRESH_MAX:
            cached = self._spreads[owner, weight] = (weight * spread_scores(owner, state), [len(changes)])
            return cached[0]
        scores, position = cached
        if position[0] < len(changes):
            per_node, per_zone = state.owner_counts(owner)
            zone_idx = state.snapshot.zone_idx
            for zone in {int(zone_idx[j]) for j in changes[position[0]:]}:
                members = self._zone_members.get(zone)
                if members is None:
                    members = self._zone_members[zone] = np.flatnonzero(zone_idx == zone)
                scores[members] = weight * ((100 // (1 + per_node[members]) + 100 // (1 + per_zone[zone])) // 2)
            position[0] = len(changes)
        return scores

    def choose(self, view: PodView, vector: np.ndarray) -> int | None:
        n = len(self.state.nodes)
        if n == 0:
            return None
        cls = view.cls
        score = self._scores(cls, vector).score
        if cls.policy.mode == Mode.ROTATE:
            start = self.state.bound_count % n
            feasible = score >= 0
            k = int(feasible[start:].argmax())
            if feasible[start + k]:
                return start + k
            k = int(feasible[:start].argmax()) if start else 0
            return k if start and feasible[k] else None
        spread_weight = cls.policy.weights.get(TOPOLOGY_SPREAD, 0)
        if spread_weight and view.owner is not None:
            score = np.add(score, self._spread(view.owner, spread_weight), out=self._buffer)
        j = int(score.argmax())
        return j if score[j] >= 0 else None

    def reasons(self, view: PodView, vector: np.ndarray) -> dict[str, int]:
        state = self.state
        entry = self._scores(view.cls, vector)
        out: dict[str, int] = {}
        counts = np.bincount(entry.codes, minlength=len(STATIC_FILTERS) + 1)
        for number, plugin in enumerate(STATIC_FILTERS, start=1):
            if counts[number] and plugin.name == "NodeReady":
                phases = np.bincount(state.snapshot.phase_reason[entry.codes == number], minlength=len(Reason) + 1)
                for k, reason in enumerate(Reason, start=1):
                    if phases[k]:
                        out[str(reason)] = int(phases[k])
            elif counts[number]:
                out[str(plugin.reason)] = int(counts[number])
        rows = np.flatnonzero(entry.static_ok)
        ports = np.zeros(len(rows), dtype=bool)
        for port in view.cls.host_ports:
            ports |= state.port_mask(port)[rows]
        if ports.any():
            out[str(Reason.PORTS)] = int(ports.sum())
        rows = rows[~ports]
        for c in np.flatnonzero(vector):
            short = int(np.count_nonzero(state.used[c, rows] + vector[c] > state.alloc[c, rows]))
            if short:
                out[insufficient(state.columns[c])] = short
        return out

    def preemption_candidates(self, view: PodView, vector: np.ndarray) -> np.ndarray:
        entry = self._scores(view.cls, vector)
        state = self.state
        # Necessary conditions only (an emptied node must hold the pod), so the reference's
        # longer candidate list yields the same plan.
        could_fit = np.all(state.alloc >= vector[:, None], axis=0)
        return np.flatnonzero(entry.static_ok & could_fit & (state.min_priority < view.priority))
