"""Canary steps of a rolling update: how many pods of the new revision are allowed right now.

``plan_canary`` is pure: ``spec.strategy.canary.steps`` is walked from ``status.canaryStep``.
``setWeight: W`` lets ``ceil(W% of replicas)`` pods run the new template (the rest stay on the old
one) and completes once that many are Ready; ``pause: {duration: 30s}`` holds for that long. After
the last step the rolling update finishes as usual. The first rollout of a Deployment (nothing to
protect) skips the steps. Weights are pod counts: shoal does no traffic shaping here. This module
never reads the store and never picks pods.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shoal.controllers.actions import parse_time, rfc3339
from shoal.model import Deployment

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@dataclass(frozen=True)
class CanaryPlan:
    step: int  # index of the step in force; len(steps) when all are done
    started: str  # when that step began (RFC 3339)
    max_updated: int | None  # cap on pods of the new template; None: no cap
    waiting: str  # "" or why the rollout is holding (a pause step)
    requeue_after: float | None


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``5m``, ``1h30m`` as seconds; ValueError names the accepted forms."""
    value = text.strip()
    if value.isdigit():
        return float(value)
    match = _DURATION.match(value)
    if not value or match is None:
        raise ValueError(f'pause duration "{text}" is not a duration; use e.g. 30s, 5m or 1h30m')
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def _cap(weight: int, want: int) -> int:
    return min(math.ceil(max(weight, 0) * want / 100), want)


def plan_canary(deploy: Deployment, updated_ready: int, *, new_rollout: bool, first_rollout: bool,
                now: datetime) -> CanaryPlan | None:
    """The canary step in force after this reconcile, or None when the Deployment has no steps."""
    canary = deploy.spec.strategy.canary
    steps = canary.steps if canary is not None else []
    if not steps:
        return None
    want = max(deploy.spec.replicas, 0)
    if first_rollout:
        return CanaryPlan(len(steps), rfc3339(now), None, "", None)
    status = deploy.status
    step = 0 if new_rollout else min(max(status.canary_step, 0), len(steps))
    started = (None if new_rollout else parse_time(status.canary_step_started)) or now
    weight = 0
    for earlier in steps[:step]:
        weight = earlier.set_weight if earlier.set_weight is not None else weight
    waiting, requeue = "", None
    while step < len(steps):
        current = steps[step]
        if current.set_weight is not None:
            weight = current.set_weight
            if updated_ready < _cap(weight, want):
                break
        elif current.pause is not None:
            try:
                hold = parse_duration(current.pause.duration)
            except ValueError:
                hold = 0.0
            ends = started + timedelta(seconds=hold)
            if now < ends:
                waiting = f"canary step {step + 1}/{len(steps)}: pausing {current.pause.duration} at {weight}%"
                requeue = (ends - now).total_seconds()
                break
        step, started = step + 1, now
    cap = _cap(weight, want) if step < len(steps) else None
    return CanaryPlan(step, rfc3339(started), cap, waiting, requeue)
