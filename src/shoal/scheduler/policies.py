"""Scheduling policies as weight tables over the score plugins.

Owns the seven policy names and their weights. A new policy is a new table here, not a new code
path. FirstFit and RoundRobin score nothing: they take the first feasible node in node-name
order (RoundRobin starting from a cursor that advances with every binding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class PolicyName(StrEnum):
    FIRST_FIT = "FirstFit"
    BEST_FIT = "BestFit"
    WORST_FIT = "WorstFit"
    ROUND_ROBIN = "RoundRobin"
    SPREAD = "Spread"
    LOW_LATENCY = "LowLatency"
    ENERGY_SAVER = "EnergySaver"


class Mode(StrEnum):
    SCORE = "score"  # highest weighted score wins; ties go to the first node by name
    FIRST = "first"  # first feasible node by name
    ROTATE = "rotate"  # first feasible node at or after the round-robin cursor


# Score plugin names (see plugins/scores.py).
LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
BALANCED = "BalancedAllocation"
IMAGE_LOCALITY = "ImageLocality"
LATENCY_AWARE = "LatencyAware"
ENERGY_AWARE = "EnergyAware"
NODE_AFFINITY = "NodeAffinity"
TAINT_TOLERATION = "TaintToleration"
TOPOLOGY_SPREAD = "TopologySpread"


@dataclass(frozen=True)
class Policy:
    name: str
    mode: Mode
    weights: Mapping[str, int] = field(default_factory=dict)


_COMMON = {NODE_AFFINITY: 1, TAINT_TOLERATION: 1}

POLICIES: Mapping[str, Policy] = {
    PolicyName.FIRST_FIT: Policy(PolicyName.FIRST_FIT, Mode.FIRST),
    PolicyName.ROUND_ROBIN: Policy(PolicyName.ROUND_ROBIN, Mode.ROTATE),
    PolicyName.BEST_FIT: Policy(PolicyName.BEST_FIT, Mode.SCORE, {
        MOST_ALLOCATED: 3, BALANCED: 1, IMAGE_LOCALITY: 1, **_COMMON}),
    PolicyName.WORST_FIT: Policy(PolicyName.WORST_FIT, Mode.SCORE, {
        LEAST_ALLOCATED: 3, BALANCED: 1, **_COMMON}),
    PolicyName.SPREAD: Policy(PolicyName.SPREAD, Mode.SCORE, {
        TOPOLOGY_SPREAD: 10, LEAST_ALLOCATED: 1, **_COMMON}),
    PolicyName.LOW_LATENCY: Policy(PolicyName.LOW_LATENCY, Mode.SCORE, {
        LATENCY_AWARE: 10, LEAST_ALLOCATED: 1, IMAGE_LOCALITY: 1, **_COMMON}),
    PolicyName.ENERGY_SAVER: Policy(PolicyName.ENERGY_SAVER, Mode.SCORE, {
        ENERGY_AWARE: 5, MOST_ALLOCATED: 2, **_COMMON}),
}


class UnknownPolicyError(ValueError):
    """A policy name that is not one of ``POLICIES``; the message lists the valid ones."""


def lookup_policy(name: str, where: str = "policy") -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        valid = ", ".join(POLICIES)
        raise UnknownPolicyError(f'{where}: "{name}" is not a scheduling policy; use one of {valid}') from None
