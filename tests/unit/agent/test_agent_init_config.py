"""PodWorker with init containers and ConfigMap/Secret sources, against the in-memory FakeDriver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_worker import Harness, states, sync, until

from shoal.agent.configenv import ConfigKey, ConfigKind
from shoal.agent.configsource import ConfigSource
from shoal.agent.pods import PodWorker
from shoal.model.pod import ContainerState


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    h.ctx.configs = ConfigSource(h.cache)
    yield h
    h.cache.close()


def pod_dict(restart_policy: str = "Always", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "edge", "uid": "u1"},
            "spec": {"restartPolicy": restart_policy, "terminationGracePeriodSeconds": 3,
                     "containers": [{"name": "app", "image": "reg/img:1"}], **spec}}


INITS = [{"name": "one", "image": "reg/img:1"}, {"name": "two", "image": "reg/img:1"}]


def init_states(worker: PodWorker) -> list[tuple[str, str]]:
    return [(s["state"], s.get("reason", "")) for s in worker.status.get("initContainerStatuses", [])]


def initialized(worker: PodWorker) -> str:
    return next(c["status"] for c in worker.status.get("conditions", []) if c["type"] == "Initialized")


async def start(harness: Harness, pod: dict[str, Any]) -> tuple[PodWorker, asyncio.Task[None]]:
    harness.cache.put_pod(pod)
    worker = PodWorker(harness.ctx, pod)
    return worker, asyncio.create_task(worker.run())


@sync
async def test_init_containers_run_in_order_before_the_app(harness: Harness) -> None:
    worker, task = await start(harness, pod_dict(initContainers=INITS))
    try:
        await until(lambda: init_states(worker) == [("Running", ""), ("Waiting", "PodInitializing")],
                    "first init container running")
        assert states(worker) == [("Waiting", "Init:0/2", 0)] and worker.status["phase"] == "Pending"
        assert initialized(worker) == "False"
        harness.driver.exit("u1-one", 0)
        worker.poke()
        await until(lambda: init_states(worker) == [("Stopped", "Completed"), ("Running", "")], "second running")
        assert states(worker) == [("Waiting", "Init:1/2", 0)]
        assert "u1-app" not in {cid for _, cid in harness.driver.calls}
        harness.driver.exit("u1-two", 0)
        worker.poke()
        await until(lambda: worker.status.get("phase") == "Running", "app running")
        assert initialized(worker) == "True"
        created = [cid for call, cid in harness.driver.calls if call == "create"]
        assert created == ["u1-one", "u1-two", "u1-app"]
    finally:
        task.cancel()


@sync
async def test_failing_init_container_crash_loops_and_blocks_the_app(harness: Harness) -> None:
    worker, task = await start(harness, pod_dict(initContainers=INITS))
    try:
        await until(lambda: init_states(worker) == [("Running", ""), ("Waiting", "PodInitializing")],
                    "first init container running")
        harness.driver.exit("u1-one", 3)
        worker.poke()
        await until(lambda: init_states(worker)[0] == ("Waiting", "CrashLoopBackOff"), "Init:CrashLoopBackOff")
        assert states(worker) == [("Waiting", "Init:CrashLoopBackOff", 0)]
        harness.clock.advance(1)
        worker.poke()
        await until(lambda: init_states(worker)[0] == ("Running", ""), "restarted")
        assert worker.status["initContainerStatuses"][0]["restartCount"] == 1
        assert ("create", "u1-two") not in harness.driver.calls
    finally:
        task.cancel()


@sync
async def test_failing_init_container_under_never_fails_the_pod(harness: Harness) -> None:
    worker, task = await start(harness, pod_dict("Never", initContainers=INITS))
    try:
        await until(lambda: init_states(worker) == [("Running", ""), ("Waiting", "PodInitializing")],
                    "first init container running")
        harness.driver.exit("u1-one", 1)
        worker.poke()
        await until(lambda: worker.status.get("phase") == "Failed", "Failed")
        assert states(worker) == [("Waiting", "Init:Error", 0)]
    finally:
        task.cancel()


@sync
async def test_missing_config_map_waits_then_env_and_volume_follow_it(harness: Harness, tmp_path: Path) -> None:
    configs = harness.ctx.configs
    assert configs is not None
    pod = pod_dict(volumes=[{"name": "cfg", "configMap": {"name": "app"}}])
    pod["spec"]["containers"][0].update(envFrom=[{"configMapRef": {"name": "app"}, "prefix": "APP_"}],
                                        volumeMounts=[{"name": "cfg", "mountPath": "/etc/app"}])
    worker, task = await start(harness, pod)
    try:
        await until(lambda: states(worker) == [("Waiting", "CreateContainerConfigError", 0)], "config error")
        assert 'ConfigMap "edge/app" not found' in worker.status["containerStatuses"][0]["message"]
        configs.set_listed(ConfigKind.CONFIG_MAP, "edge", {"app": {"level": b"debug"}})
        await until(lambda: worker.status.get("phase") == "Running", "Running once the ConfigMap exists")
        spec = harness.driver._entries["u1-app"].spec
        assert dict(spec.env)["APP_level"] == "debug"
        volume = tmp_path / "pods" / "u1" / "volumes" / "cfg"
        assert spec.mounts[0].source == str(volume) and spec.mounts[0].read_only
        assert (volume / "level").read_text() == "debug"
        pid = (await harness.driver.inspect("u1-app")).pid
        configs.set_object(ConfigKey(ConfigKind.CONFIG_MAP, "edge", "app"), {"level": b"info", "new": b"1"})
        await until(lambda: (volume / "new").exists(), "the volume refreshed")
        assert (volume / "level").read_text() == "info"
        info = await harness.driver.inspect("u1-app")
        assert info.state is ContainerState.RUNNING and info.pid == pid  # env changes do not restart it
    finally:
        task.cancel()
