"""PodWorker against the in-memory FakeDriver: create, sandbox joins, crash-loop, adoption, deletion."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from agentfakes import Images

from shoal.agent.cache import PodCache
from shoal.agent.pods import PodContext, PodWorker
from shoal.model.pod import ContainerState
from shoal.runtime.fake import FakeDriver


def sync(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.driver = FakeDriver()
        self.clock = Clock()
        self.cache = PodCache(tmp / "agent.db")
        self.published: list[str] = []
        self.ctx = PodContext(driver=self.driver, images=Images(), cache=self.cache,  # type: ignore[arg-type]
                              pods_dir=tmp / "pods", host_ip="10.1.1.1", publish=self.published.append,
                              clock=self.clock, watch_pids=False)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.cache.close()


def pod_dict(restart_policy: str = "Always", containers: int = 2) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": restart_policy, "terminationGracePeriodSeconds": 3,
                     "containers": [{"name": f"c{i}", "image": "reg/img:1"} for i in range(containers)]}}


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def states(worker: PodWorker) -> list[tuple[str, str, int]]:
    return [(s["state"], s.get("reason", ""), s["restartCount"]) for s in worker.status.get("containerStatuses", [])]


@sync
async def test_creates_the_sandbox_first_and_joins_its_namespaces(harness: Harness) -> None:
    harness.cache.put_pod(pod_dict())
    worker = PodWorker(harness.ctx, pod_dict())
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: worker.status.get("phase") == "Running", "Running")
        first = await harness.driver.inspect("u1-c0")
        second = harness.driver._entries["u1-c1"].spec  # what the agent asked for
        assert {j.path for j in second.join_namespaces} == {f"/proc/{first.pid}/ns/{n}" for n in ("net", "ipc", "uts")}
        assert second.hostname == "web" and second.argv == ("sleep", "1d")
        assert worker.status["hostIP"] == "10.1.1.1" and worker.status["startTime"]
        assert states(worker) == [("Running", "", 0), ("Running", "", 0)]
        assert harness.published == ["u1"]
    finally:
        task.cancel()


@sync
async def test_crash_loop_backoff_then_restart(harness: Harness) -> None:
    harness.cache.put_pod(pod_dict(containers=1))
    worker = PodWorker(harness.ctx, pod_dict(containers=1))
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: worker.status.get("phase") == "Running", "Running")
        harness.clock.advance(2)
        harness.driver.exit("u1-c0", 1)
        worker.poke()
        await until(lambda: states(worker) == [("Waiting", "CrashLoopBackOff", 0)], "CrashLoopBackOff")
        message = worker.status["containerStatuses"][0]["message"]
        assert "next retry at 2026-05-01T08:00:03Z" in message
        harness.clock.advance(1)
        worker.poke()
        await until(lambda: states(worker) == [("Running", "", 1)], "restarted once")
        assert (await harness.driver.inspect("u1-c0")).state is ContainerState.RUNNING
        assert harness.cache.tracks("u1")["c0"].restart_count == 1
    finally:
        task.cancel()


@sync
async def test_never_policy_leaves_a_finished_pod_succeeded(harness: Harness) -> None:
    worker = PodWorker(harness.ctx, pod_dict("Never", containers=1))
    harness.cache.put_pod(worker.pod)
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: worker.status.get("phase") == "Running", "Running")
        harness.driver.exit("u1-c0", 0)
        worker.poke()
        await until(lambda: worker.status.get("phase") == "Succeeded", "Succeeded")
        assert states(worker) == [("Stopped", "Completed", 0)]
    finally:
        task.cancel()


@sync
async def test_a_new_worker_adopts_running_containers(harness: Harness) -> None:
    first = PodWorker(harness.ctx, pod_dict())
    harness.cache.put_pod(first.pod)
    task = asyncio.create_task(first.run())
    await until(lambda: first.status.get("phase") == "Running", "Running")
    task.cancel()
    pids = [(await harness.driver.inspect(c)).pid for c in ("u1-c0", "u1-c1")]
    calls = len(harness.driver.calls)

    second = PodWorker(harness.ctx, harness.cache.pods()[0])  # as after an agent restart
    task = asyncio.create_task(second.run())
    try:
        await until(lambda: second.status.get("phase") == "Running", "Running again")
        assert harness.driver.calls[calls:] == []  # nothing created, started or stopped
        assert [(await harness.driver.inspect(c)).pid for c in ("u1-c0", "u1-c1")] == pids
    finally:
        task.cancel()


@sync
async def test_delete_stops_and_removes_everything(harness: Harness, tmp_path: Path) -> None:
    worker = PodWorker(harness.ctx, pod_dict())
    harness.cache.put_pod(worker.pod)
    task = asyncio.create_task(worker.run())
    await until(lambda: worker.status.get("phase") == "Running", "Running")
    images = harness.ctx.images
    assert isinstance(images, Images) and list(images.pins) == [worker.owner]  # its image is kept from prune
    worker.delete()
    await asyncio.wait_for(task, 5)
    assert images.pins == {}, "a removed pod still pins its image"
    assert await harness.driver.recover() == []
    assert ("stop", "u1-c0") in harness.driver.calls and ("remove", "u1-c1") in harness.driver.calls
    assert harness.cache.pods() == [] and not (tmp_path / "pods" / "u1").exists()
