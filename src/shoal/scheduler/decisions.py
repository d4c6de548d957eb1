"""What ``schedule`` returns for each pod: a Binding, an Unschedulable, or a Preemption.

Plain frozen values; the server's single committer turns them into store writes, Conditions and
Events. Must not hold references to nodes or pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.scheduler.podview import PodKey


@dataclass(frozen=True)
class Binding:
    """Put ``pod_key`` on ``node``; ``scores`` are the winning node's per-plugin scores (and total)."""

    pod_key: PodKey
    node: str
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Unschedulable:
    """No node fits: ``reasons`` counts nodes per rejection reason; ``message`` is the sentence users see."""

    pod_key: PodKey
    reasons: dict[str, int]
    message: str


@dataclass(frozen=True)
class Preemption:
    """Evict ``victims`` (all of lower priority) from ``node`` so the pod fits there; the pod is
    bound once they are gone. Later pods in the same call already see the node as taken by it."""

    pod_key: PodKey
    node: str
    victims: tuple[PodKey, ...]


Decision = Binding | Unschedulable | Preemption
