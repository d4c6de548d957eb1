"""PodWorker against the FakeDriver: pausing freezes and thaws containers, eviction kills them for good."""

from __future__ import annotations

import asyncio
from typing import Any

from test_agent_worker import Harness, harness, pod_dict, states, sync, until  # noqa: F401 - the fixture

from shoal.agent.agent import _desired
from shoal.agent.pods import PodWorker
from shoal.model.pod import ANNOTATION_PAUSED, ContainerState


def paused(pod: dict[str, Any], on: bool) -> dict[str, Any]:
    annotations = {ANNOTATION_PAUSED: "true"} if on else {}
    return {**pod, "metadata": {**pod["metadata"], "annotations": annotations}}


def conditions(worker: PodWorker) -> dict[str, str]:
    return {c["type"]: c["status"] for c in worker.status.get("conditions", [])}


def test_annotation_changes_reach_the_worker_but_status_changes_do_not() -> None:
    pod = pod_dict()
    assert _desired(pod) != _desired(paused(pod, True))
    assert _desired(pod) == _desired({**pod, "status": {"phase": "Running"}})


@sync
async def test_pause_freezes_every_container_and_unpause_resumes(harness: Harness) -> None:  # noqa: F811 - the fixture
    worker = PodWorker(harness.ctx, pod_dict())
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: states(worker) == [("Running", "", 0)] * 2, "Running")
        pids = [(await harness.driver.inspect(f"u1-c{i}")).pid for i in range(2)]
        worker.update(paused(pod_dict(), True))
        await until(lambda: conditions(worker).get("Paused") == "True", "Paused=True")
        assert states(worker) == [("Paused", "Paused", 0)] * 2
        assert [(await harness.driver.inspect(f"u1-c{i}")).state for i in range(2)] == [ContainerState.PAUSED] * 2
        assert worker.status["phase"] == "Running" and conditions(worker)["Ready"] == "False"
        worker.update(paused(pod_dict(), False))
        await until(lambda: conditions(worker).get("Paused") == "False", "Paused=False")
        assert states(worker) == [("Running", "", 0)] * 2 and conditions(worker)["Ready"] == "True"
        assert [(await harness.driver.inspect(f"u1-c{i}")).pid for i in range(2)] == pids  # thawed, not restarted
    finally:
        task.cancel()


@sync
async def test_a_pod_paused_before_it_starts_creates_nothing(harness: Harness) -> None:  # noqa: F811 - the fixture
    worker = PodWorker(harness.ctx, paused(pod_dict(containers=1), True))
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: conditions(worker).get("Paused") == "True", "Paused=True")
        assert states(worker) == [("Waiting", "Paused", 0)] and not harness.driver.calls
    finally:
        task.cancel()


@sync
async def test_evicted_pod_is_killed_failed_and_never_restarted(harness: Harness) -> None:  # noqa: F811 - the fixture
    worker = PodWorker(harness.ctx, pod_dict())
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: states(worker) == [("Running", "", 0)] * 2, "Running")
        worker.update(paused(pod_dict(), True))  # a frozen pod is thawed so that it can die
        await until(lambda: conditions(worker).get("Paused") == "True", "Paused=True")
        worker.evict("The node was low on memory")
        await asyncio.wait_for(worker.evicted.wait(), 2)
        assert worker.status["phase"] == "Failed" and worker.status["reason"] == "Evicted"
        assert worker.status["message"] == "The node was low on memory"
        assert conditions(worker)["Paused"] == "False" and conditions(worker)["Ready"] == "False"
        assert {(await harness.driver.inspect(f"u1-c{i}")).state for i in range(2)} == {ContainerState.STOPPED}
        harness.clock.advance(600)
        worker.update(pod_dict())
        await asyncio.sleep(0.05)
        assert {(await harness.driver.inspect(f"u1-c{i}")).state for i in range(2)} == {ContainerState.STOPPED}
        assert worker.status["phase"] == "Failed"
    finally:
        task.cancel()
    again = PodWorker(harness.ctx, pod_dict())  # a restarted agent: the marker in the pod dir keeps it evicted
    assert again.eviction == "The node was low on memory"
