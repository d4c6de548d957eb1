"""Preemption: for a pod that fits nowhere, the node where evicting the fewest lower-priority
pods makes room, and which pods those are.

Kubernetes' approach: on each candidate node remove every lower-priority pod, check the pod fits,
then reprieve the removed pods highest priority first while it still fits. The best node has
the fewest victims, then the lowest top victim priority, then the lowest priority sum, then
comes first by name. Shared by the batch and reference paths. Must not bind or evict itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from shoal.scheduler.podview import PodView
from shoal.scheduler.snapshot import PlacedPod
from shoal.scheduler.state import WorkState


def _victims_on(view: PodView, vector: np.ndarray, state: WorkState, j: int) -> list[PlacedPod] | None:
    pods = state.placed(j)
    lower = sorted((p for p in pods if p.priority < view.priority), key=lambda p: (p.priority, p.key))
    if not lower:
        return None
    ports = view.cls.host_ports
    if any(p.host_ports & ports for p in pods if p.priority >= view.priority):
        return None
    free = state.alloc[:, j] - state.used[:, j]
    for pod in lower:
        free = free + state.request_vector(pod.requests)
    if np.any(vector > free):
        return None
    victims: list[PlacedPod] = []
    for pod in reversed(lower):
        need = state.request_vector(pod.requests)
        if not (pod.host_ports & ports) and np.all(vector + need <= free):
            free = free - need
        else:
            victims.append(pod)
    return victims


def plan_preemption(view: PodView, vector: np.ndarray, state: WorkState,
                    candidates: Iterable[int]) -> tuple[int, list[PlacedPod]] | None:
    """The best (node index, victims) among ``candidates`` (nodes passing every static filter)."""
    best: tuple[tuple[int, int, int, int], int, list[PlacedPod]] | None = None
    for j in candidates:
        victims = _victims_on(view, vector, state, int(j))
        if not victims:
            continue
        rank = (len(victims), max(v.priority for v in victims), sum(v.priority for v in victims), int(j))
        if best is None or rank < best[0]:
            best = (rank, int(j), victims)
    return None if best is None else (best[1], best[2])
