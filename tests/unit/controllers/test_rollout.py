"""reconcile_rollout as a pure function: surge/unavailable math, history, pause, deadline, rollback.

A small in-memory world applies the Actions like the store would and plays the agents: a new pod
becomes Running and Ready one round after it is created, unless its image contains "crash".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec
import pytest

from shoal.controllers import Create, Delete, EmitEvent, Update
from shoal.controllers.deployment import ANNOTATION_ROLLED_BACK_TO, reconcile_rollout, rolling_bounds
from shoal.controllers.rollout_history import plan_history
from shoal.controllers.rollout_pods import is_ready, resolve, template_hash
from shoal.model import (
    Condition,
    ContainerState,
    ContainerStatus,
    Deployment,
    DeploymentRevision,
    Pod,
    PodPhase,
    PodStatus,
    condition,
)
from shoal.model.workloads import ANNOTATION_REVISION, LABEL_TEMPLATE_HASH, StrategyType

from .helpers import T0, deployment


def with_image(deploy: Deployment, image: str, **spec: object) -> Deployment:
    template = deploy.spec.template
    container = msgspec.structs.replace(template.spec.containers[0], image=image)
    template = msgspec.structs.replace(template, spec=msgspec.structs.replace(template.spec, containers=[container]))
    changed = deploy.spec.template != template or bool(spec)
    meta = msgspec.structs.replace(deploy.metadata, generation=deploy.metadata.generation + int(changed))
    return msgspec.structs.replace(deploy, metadata=meta, spec=msgspec.structs.replace(deploy.spec, template=template,
                                                                                        **spec))


@dataclass
class World:
    deploy: Deployment
    now: object = T0
    pods: dict[str, Pod] = field(default_factory=dict)
    revisions: dict[str, DeploymentRevision] = field(default_factory=dict)
    events: list[EmitEvent] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    min_ready_seen: list[int] = field(default_factory=list)

    def step(self) -> None:
        actions = reconcile_rollout(self.deploy, list(self.pods.values()), list(self.revisions.values()),
                                    self.now, lambda: f"{next(self.counter):05d}")  # type: ignore[arg-type]
        for s in actions.steps:
            if isinstance(s, EmitEvent):
                self.events.append(s)
            elif isinstance(s, Create | Update) and isinstance(s.obj, DeploymentRevision):
                self.revisions[s.obj.metadata.name] = s.obj
            elif isinstance(s, Create) and isinstance(s.obj, Pod):
                self.pods[s.obj.metadata.name] = s.obj
            elif isinstance(s, Update) and isinstance(s.obj, Deployment):
                generation = self.deploy.metadata.generation + int(s.obj.spec != self.deploy.spec)
                self.deploy = msgspec.structs.replace(s.obj, metadata=msgspec.structs.replace(
                    s.obj.metadata, generation=generation))
            elif isinstance(s, Delete):
                self.pods.pop(s.name, None)
                self.revisions.pop(s.name, None)
        self.min_ready_seen.append(sum(1 for p in self.pods.values() if is_ready(p)))
        self.now += timedelta(seconds=1)  # type: ignore[operator]
        for name, pod in list(self.pods.items()):
            if pod.status.phase == PodPhase.PENDING:
                self.pods[name] = _started(pod)

    def run(self, rounds: int = 40) -> None:
        for _ in range(rounds):
            self.step()

    def images(self) -> list[str]:
        return sorted(p.spec.containers[0].image for p in self.pods.values())

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def _started(pod: Pod) -> Pod:
    crash = "crash" in pod.spec.containers[0].image
    spec = msgspec.structs.replace(pod.spec, node_name="n1")
    statuses = [ContainerStatus(name="c", state=ContainerState.WAITING, reason="CrashLoopBackOff")] if crash else []
    status = PodStatus(phase=PodPhase.RUNNING, container_statuses=statuses, conditions=[Condition(
        type="Ready", status="False" if crash else "True", last_transition_time="2026-11-23T07:00:00Z")])
    return msgspec.structs.replace(pod, spec=spec, status=status)


def progressing(deploy: Deployment) -> Condition:
    cond = condition(deploy.status.conditions, "Progressing")
    assert cond is not None
    return cond


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "expected"), [
    (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailable rounds down
    (6, "33%", "33%", (2, 1)),
    (3, "10%", "10%", (1, 0)),
    (4, 0, 0, (0, 1)),  # never both zero: one pod may go
    (4, "0%", "0%", (0, 1)),
    (5, 2, 1, (2, 1)),
    (10, "bogus", "-3", (0, 1)),
])
def test_surge_rounds_up_and_unavailable_rounds_down(replicas: int, surge: int | str, unavailable: int | str,
                                                     expected: tuple[int, int]) -> None:
    assert rolling_bounds(deployment(replicas=replicas, surge=surge, unavailable=unavailable)) == expected


def test_resolve_percent_of_zero_replicas_is_zero() -> None:
    assert resolve("50%", 0, round_up=True) == 0 and resolve(3, 0, round_up=False) == 3


def test_rolling_update_keeps_at_least_replicas_minus_unavailable_ready() -> None:
    world = World(deployment(replicas=6, image="web:1", surge=1, unavailable=1))
    world.run(10)
    assert world.images() == ["web:1"] * 6
    world.deploy = with_image(world.deploy, "web:2")
    world.min_ready_seen.clear()
    world.run(30)
    assert world.images() == ["web:2"] * 6
    assert min(world.min_ready_seen) >= 5
    assert len(world.pods) <= 7
    assert progressing(world.deploy).reason == "NewRevisionAvailable"
    assert world.deploy.metadata.annotations[ANNOTATION_REVISION] == "2"
    assert sorted(r.revision for r in world.revisions.values()) == [1, 2]


def test_recreate_removes_every_old_pod_before_the_first_new_one() -> None:
    world = World(deployment(replicas=3, image="web:1", strategy=StrategyType.RECREATE))
    world.run(5)
    world.deploy = with_image(world.deploy, "web:2")
    mixed = []
    for _ in range(10):
        world.step()
        mixed.append(len({p.spec.containers[0].image for p in world.pods.values()}) > 1)
    assert world.images() == ["web:2"] * 3 and not any(mixed)


def test_history_numbers_revisions_and_renumbers_a_template_that_comes_back() -> None:
    world = World(deployment(replicas=2, image="web:1"))
    world.run(5)
    for image in ("web:2", "web:1"):
        world.deploy = with_image(world.deploy, image)
        world.run(10)
    by_image = {r.template.spec.containers[0].image: r.revision for r in world.revisions.values()}
    assert by_image == {"web:1": 3, "web:2": 2}
    assert world.deploy.metadata.annotations[ANNOTATION_REVISION] == "3"
    assert "RolloutStarted" in world.reasons() and "RolloutComplete" in world.reasons()


def test_history_is_pruned_to_the_limit_oldest_first() -> None:
    world = World(msgspec.structs.replace(deployment(replicas=1, image="web:1"), spec=msgspec.structs.replace(
        deployment(replicas=1, image="web:1").spec, revision_history_limit=2)))
    for n in range(1, 6):
        world.deploy = with_image(world.deploy, f"web:{n}")
        world.run(6)
    assert sorted(r.revision for r in world.revisions.values()) == [3, 4, 5]


def test_a_revision_with_live_pods_is_never_pruned() -> None:
    deploy = msgspec.structs.replace(deployment(), spec=msgspec.structs.replace(deployment().spec,
                                                                                 revision_history_limit=0))
    old = DeploymentRevision(metadata=msgspec.structs.replace(deploy.metadata, name="web-old",
                                                              labels={LABEL_TEMPLATE_HASH: "old"}), revision=1)
    plan = plan_history(deploy, [old], template_hash(deploy.spec.template), {"old"})
    assert plan.current == 2 and not [s for s in plan.steps if isinstance(s, Delete)]
    plan = plan_history(deploy, [old], template_hash(deploy.spec.template), set())
    assert [s.name for s in plan.steps if isinstance(s, Delete)] == ["web-old"]


def _broken_world(auto_rollback: bool) -> World:
    world = World(deployment(replicas=4, image="web:1", surge=1, unavailable=1))
    world.deploy = msgspec.structs.replace(world.deploy, spec=msgspec.structs.replace(
        world.deploy.spec, progress_deadline_seconds=5, auto_rollback=auto_rollback))
    world.run(6)
    world.deploy = with_image(world.deploy, "web:2")
    world.run(10)
    world.deploy = with_image(world.deploy, "web:3-crash")
    world.min_ready_seen.clear()
    return world


def test_a_stuck_rollout_is_rolled_back_after_the_deadline() -> None:
    world = _broken_world(auto_rollback=True)
    seen = []
    for _ in range(30):
        world.step()
        seen.append((progressing(world.deploy).status, progressing(world.deploy).reason))
    assert ("False", "ProgressDeadlineExceeded") in seen
    assert world.deploy.spec.template.spec.containers[0].image == "web:2"
    assert world.images() == ["web:2"] * 4
    (event,) = [e for e in world.events if e.reason == "RolledBack"]
    assert event.type == "Warning"
    assert "CrashLoopBackOff" in event.message and "rolled back to revision 2" in event.message
    rolled = condition(world.deploy.status.conditions, "RolledBack")
    assert rolled is not None and rolled.status == "True"
    assert world.deploy.metadata.annotations[ANNOTATION_REVISION] == "4"  # revision 2 came back as 4
    assert min(world.min_ready_seen) >= 3


def test_rollback_happens_only_after_the_deadline() -> None:
    world = _broken_world(auto_rollback=True)
    world.run(4)
    assert world.deploy.spec.template.spec.containers[0].image == "web:3-crash"
    world.run(10)
    assert world.deploy.spec.template.spec.containers[0].image == "web:2"


def test_without_auto_rollback_the_deadline_only_reports() -> None:
    world = _broken_world(auto_rollback=False)
    world.run(30)
    assert world.deploy.spec.template.spec.containers[0].image == "web:3-crash"
    cond = progressing(world.deploy)
    assert (cond.status, cond.reason) == ("False", "ProgressDeadlineExceeded")
    assert "CrashLoopBackOff" in cond.message
    assert world.reasons().count("ProgressDeadlineExceeded") == 1 and "RolledBack" not in world.reasons()


def test_a_new_rollout_by_the_user_clears_the_rolled_back_mark() -> None:
    world = _broken_world(auto_rollback=True)
    world.run(30)
    assert ANNOTATION_ROLLED_BACK_TO in world.deploy.metadata.annotations
    world.deploy = with_image(world.deploy, "web:4")
    world.run(12)
    assert condition(world.deploy.status.conditions, "RolledBack") is None
    assert ANNOTATION_ROLLED_BACK_TO not in world.deploy.metadata.annotations
    assert progressing(world.deploy).reason == "NewRevisionAvailable"


def test_a_slow_rollout_that_keeps_progressing_is_not_rolled_back() -> None:
    world = World(deployment(replicas=6, image="web:1", surge=1, unavailable=0))
    world.deploy = msgspec.structs.replace(world.deploy, spec=msgspec.structs.replace(
        world.deploy.spec, progress_deadline_seconds=3, auto_rollback=True))
    world.run(8)
    world.deploy = with_image(world.deploy, "web:2")
    world.run(40)  # 6 pods one at a time take longer than 3 s in total, but each step progresses
    assert world.images() == ["web:2"] * 6
    assert "RolledBack" not in world.reasons()


def test_paused_holds_the_template_until_resumed() -> None:
    world = World(deployment(replicas=3, image="web:1"))
    world.run(5)
    world.deploy = with_image(world.deploy, "web:2", paused=True)
    world.run(10)
    assert world.images() == ["web:1"] * 3 and len(world.revisions) == 1
    assert progressing(world.deploy).reason == "DeploymentPaused"
    world.deploy = msgspec.structs.replace(world.deploy, spec=msgspec.structs.replace(world.deploy.spec, paused=False))
    world.run(15)
    assert world.images() == ["web:2"] * 3


def test_canary_steps_hold_the_new_revision_at_each_weight_then_finish() -> None:
    from shoal.model.workloads import Canary, CanaryStep, PauseStep

    base = deployment(replicas=4, image="web:1", surge=1, unavailable=0)
    steps = [CanaryStep(set_weight=25), CanaryStep(pause=PauseStep(duration="5s")), CanaryStep(set_weight=50),
             CanaryStep(pause=PauseStep(duration="5s"))]
    strategy = msgspec.structs.replace(base.spec.strategy, canary=Canary(steps=steps))
    world = World(msgspec.structs.replace(base, spec=msgspec.structs.replace(base.spec, strategy=strategy,
                                                                             progress_deadline_seconds=3)))
    world.run(4)
    assert world.images() == ["web:1"] * 4  # the first rollout skips the steps
    world.deploy = with_image(world.deploy, "web:2")
    new_counts = []
    for _ in range(30):
        world.step()
        new_counts.append(sum(1 for image in world.images() if image == "web:2"))
    assert new_counts[-1] == 4 and world.images() == ["web:2"] * 4
    assert new_counts.count(1) >= 5 and new_counts.count(2) >= 5  # held at 25% and 50% through each pause
    assert new_counts == sorted(new_counts)
    assert "RolledBack" not in world.reasons()  # a pause is not a stall
    assert progressing(world.deploy).reason == "NewRevisionAvailable"


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400)])
def test_pause_durations(text: str, seconds: float) -> None:
    from shoal.controllers.rollout_canary import parse_duration

    assert parse_duration(text) == seconds


def test_a_bad_pause_duration_names_the_fix() -> None:
    from shoal.controllers.rollout_canary import parse_duration

    with pytest.raises(ValueError, match=r"use e\.g\. 30s"):
        parse_duration("soon")
