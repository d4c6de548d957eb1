"""The scheduler's entry points: ``schedule`` (numpy batch) and ``schedule_reference`` (plain loop).

Owns the round: order pods (higher priority first, then as given), resolve each pod's policy,
ask a placer for a node, bind in the working state, fall back to preemption, and phrase the
Unschedulable message. Pure: the snapshot is not changed (a call works on a copy of the usage),
no clock is read (``now`` is passed in), no global state. The round-robin cursor is the number of
pods bound in the snapshot plus those bound so far, so it rotates across calls without state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import numpy as np

from shoal.model.pod import Pod
from shoal.scheduler.batch import BatchPlacer
from shoal.scheduler.decisions import Binding, Decision, Preemption, Unschedulable
from shoal.scheduler.plugins.scores import plugin_scores, total_score
from shoal.scheduler.podview import ClassCache, PodView, owner_of
from shoal.scheduler.policies import PolicyName, lookup_policy
from shoal.scheduler.preemption import plan_preemption
from shoal.scheduler.reasons import Reason, format_message
from shoal.scheduler.reference import ReferencePlacer
from shoal.scheduler.snapshot import ClusterSnapshot
from shoal.scheduler.state import WorkState

__all__ = ["Binding", "Decision", "Preemption", "Unschedulable", "schedule", "schedule_reference"]


class _Placer(Protocol):
    def choose(self, view: PodView, vector: np.ndarray) -> int | None: ...
    def reasons(self, view: PodView, vector: np.ndarray) -> dict[str, int]: ...
    def preemption_candidates(self, view: PodView, vector: np.ndarray) -> Sequence[int] | np.ndarray: ...


def _run(snapshot: ClusterSnapshot, pods: Sequence[Pod], policy: str, batch: bool) -> list[Decision]:
    default = lookup_policy(policy, "policy")
    group_sizes = dict(snapshot.owner_sizes)
    for pod in pods:
        owner, _ = owner_of(pod)
        if owner is not None:
            group_sizes[owner] = group_sizes.get(owner, 0) + 1
    classes = ClassCache()
    ordered = sorted(pods, key=lambda pod: -pod.spec.priority)
    views = [classes.view(pod, default, group_sizes) for pod in ordered]
    state = WorkState(snapshot, {name for view in views for name in view.cls.requests})
    placer: _Placer = BatchPlacer(state) if batch else ReferencePlacer(state)
    vectors: dict[int, np.ndarray] = {}
    decisions: list[Decision] = []
    for view in views:
        cls = view.cls
        if cls.error:
            decisions.append(Unschedulable(view.key, {str(Reason.INVALID_POD): len(snapshot)},
                                           f"{Reason.INVALID_POD}: {cls.error}"))
            continue
        vector = vectors.get(id(cls))
        if vector is None:
            vector = vectors[id(cls)] = state.request_vector(cls.requests)
        j = placer.choose(view, vector)
        if j is not None:
            scores = plugin_scores(view, vector, state, j)
            shown = {name: float(value) for name, value in scores.items()}
            if scores:
                shown["total"] = float(total_score(view, scores))
            state.bind(view, vector, j)
            decisions.append(Binding(view.key, state.nodes[j].name, shown))
            continue
        plan = plan_preemption(view, vector, state, placer.preemption_candidates(view, vector))
        if plan is not None:
            j, victims = plan
            for victim in victims:
                state.evict(victim, j)
            state.bind(view, vector, j)
            decisions.append(Preemption(view.key, state.nodes[j].name, tuple(v.key for v in victims)))
            continue
        reasons = placer.reasons(view, vector)
        decisions.append(Unschedulable(view.key, reasons, format_message(len(snapshot), reasons)))
    return decisions


def schedule(snapshot: ClusterSnapshot, pods: Sequence[Pod], policy: str = PolicyName.BEST_FIT,
             now: datetime | None = None) -> list[Decision]:
    """Place ``pods`` (pending, unbound) on the snapshot's nodes; one decision per pod, in the
    order they were considered (priority, then as given).

    ``policy`` is the cluster default; a pod's ``spec.schedulingPolicy`` overrides it. ``now`` is
    the caller's clock, accepted for time-dependent plugins; none of the current plugins reads it.
    Raises UnknownPolicyError (a ValueError listing the valid names) for an unknown ``policy``.
    """
    return _run(snapshot, pods, policy, batch=True)


def schedule_reference(snapshot: ClusterSnapshot, pods: Sequence[Pod], policy: str = PolicyName.BEST_FIT,
                       now: datetime | None = None) -> list[Decision]:
    """``schedule`` computed the straightforward way: every pod against every node in Python."""
    return _run(snapshot, pods, policy, batch=False)
