"""The reference placer: for each pod, every node in a plain Python loop through the plugins.

It is the definition the batch path is tested against (same filters, scores, ties and order)
and the baseline the benchmark measures. Must stay straightforward: no caching, no numpy tricks.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from shoal.scheduler.plugins.filters import dynamic_failures, static_failure
from shoal.scheduler.plugins.scores import plugin_scores, total_score
from shoal.scheduler.podview import PodView
from shoal.scheduler.policies import Mode
from shoal.scheduler.state import WorkState


class ReferencePlacer:
    def __init__(self, state: WorkState) -> None:
        self.state = state

    def _feasible(self, view: PodView, vector: np.ndarray, j: int) -> bool:
        node = self.state.nodes[j]
        return static_failure(view.cls, node) is None and not dynamic_failures(view.cls, vector, self.state, j)

    def choose(self, view: PodView, vector: np.ndarray) -> int | None:
        n = len(self.state.nodes)
        mode = view.cls.policy.mode
        start = self.state.bound_count % n if (mode == Mode.ROTATE and n) else 0
        best: int | None = None
        best_score = 0
        for k in range(n):
            j = (start + k) % n
            if not self._feasible(view, vector, j):
                continue
            if mode != Mode.SCORE:
                return j
            score = total_score(view, plugin_scores(view, vector, self.state, j))
            if best is None or score > best_score:
                best, best_score = j, score
        return best

    def reasons(self, view: PodView, vector: np.ndarray) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for j, node in enumerate(self.state.nodes):
            failure = static_failure(view.cls, node)
            if failure is not None:
                counts[failure] += 1
            else:
                counts.update(dynamic_failures(view.cls, vector, self.state, j))
        return {str(reason): count for reason, count in counts.items()}

    def preemption_candidates(self, view: PodView, vector: np.ndarray) -> list[int]:
        return [j for j, node in enumerate(self.state.nodes)
                if static_failure(view.cls, node) is None
                and any(p.priority < view.priority for p in self.state.placed(j))]
