"""Shared test helpers: a controllable clock, object builders, a running-controllers harness."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.controllers import Controller, run_controllers
from shoal.model import (
    Condition,
    Container,
    Deployment,
    Node,
    NodeSpec,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    PodTemplateSpec,
)
from shoal.model.node import NodePhase
from shoal.model.workloads import DeploymentSpec, DeploymentStrategy, RollingUpdate, StrategyType

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def deployment(name: str = "web", replicas: int = 3, image: str = "web:1", *, surge: int | str = 1,
               unavailable: int | str = 0, strategy: StrategyType = StrategyType.ROLLING_UPDATE,
               uid: str = "d-uid", namespace: str = "default", generation: int = 1,
               resource_version: str = "5") -> Deployment:
    return Deployment(
        metadata=ObjectMeta(name=name, namespace=namespace, uid=uid, generation=generation,
                            resource_version=resource_version),
        spec=DeploymentSpec(
            replicas=replicas,
            template=PodTemplateSpec(metadata=ObjectMeta(labels={"app": name}),
                                     spec=PodSpec(containers=[Container(name=name, image=image)])),
            strategy=DeploymentStrategy(type=strategy,
                                        rolling_update=RollingUpdate(max_surge=surge, max_unavailable=unavailable))))


def ready_status(ready: bool = True, phase: PodPhase = PodPhase.RUNNING) -> PodStatus:
    return PodStatus(phase=phase, conditions=[Condition(type="Ready", status="True" if ready else "False",
                                                        last_transition_time="2026-11-23T07:00:00Z")])


def online_node(name: str = "n1", *, phase: NodePhase = NodePhase.ONLINE, created: str = "2026-11-23T07:00:00Z",
                unschedulable: bool = False) -> Node:
    return Node(metadata=ObjectMeta(name=name, uid=f"node-{name}", creation_timestamp=created, resource_version="3"),
                spec=NodeSpec(unschedulable=unschedulable),
                status=NodeStatus(phase=phase, conditions=[Condition(type="Ready", status="True")]))


def bare_pod(name: str, node: str = "", namespace: str = "default") -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=namespace),
               spec=PodSpec(containers=[Container(name="c", image="busybox")], node_name=node))


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(controllers: Sequence[Controller]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_controllers(controllers, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


def run(coro_factory: Callable[[], Coroutine[Any, Any, None]], timeout: float = 20.0) -> None:
    """Run one async test body on a fresh event loop, bounded in time."""

    async def main() -> None:
        await asyncio.wait_for(coro_factory(), timeout)

    asyncio.run(main())
