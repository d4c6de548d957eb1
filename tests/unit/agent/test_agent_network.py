"""PodWorker with pod networking (FakePodNetwork + FakeDriver): the sandbox is wired before the first
container, every container joins its namespace, podIP is reported, pods wait for the node's conflist,
network errors show as NetworkNotReady, hostNetwork skips it all, and teardown comes after containers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from test_agent_worker import Harness, pod_dict, sync, until

from shoal.agent.pods import PodWorker
from shoal.net.fake import FakePodNetwork
from shoal.net.protocol import Bandwidth, PortMapping


@pytest.fixture
def net_harness(tmp_path: Path) -> Any:
    h = Harness(tmp_path)
    h.net = FakePodNetwork("10.77.3.0/24", netns_dir="/run/test-netns")  # type: ignore[attr-defined]
    h.ctx.network = h.net  # type: ignore[attr-defined]
    yield h
    h.cache.close()


def waiting(worker: PodWorker) -> list[tuple[str, str]]:
    return [(s.get("reason", ""), s.get("message", "")) for s in worker.status.get("containerStatuses", [])]


async def run(worker: PodWorker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.run())


@sync
async def test_sandbox_is_wired_first_and_every_container_joins_it(net_harness: Any) -> None:
    h = net_harness
    pod = pod_dict()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    pod["metadata"]["annotations"] = {"kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "1M"}
    worker = PodWorker(h.ctx, pod)
    task = await run(worker)
    try:
        await until(lambda: worker.status.get("phase") == "Running", "Running")
        assert h.net.calls[0] == ("setup", "u1") and h.driver.calls[0] == ("create", "u1-c0")
        first = await h.driver.inspect("u1-c0")
        specs = [h.driver._entries[f"u1-c{i}"].spec for i in range(2)]
        assert [(j.type, j.path) for j in specs[0].join_namespaces] == [("network", "/run/test-netns/u1")]
        assert {(j.type, j.path) for j in specs[1].join_namespaces} == {
            ("network", "/run/test-netns/u1"), ("ipc", f"/proc/{first.pid}/ns/ipc"),
            ("uts", f"/proc/{first.pid}/ns/uts")}
        assert worker.status["podIP"] == "10.77.3.2"
        assert h.net.port_mappings["u1"] == (PortMapping(8080, 80, "tcp"),)
        assert h.net.bandwidth["u1"] == Bandwidth(ingress_rate=10_000_000, egress_rate=1_000_000)
    finally:
        task.cancel()


@sync
async def test_pods_wait_with_network_not_ready_until_the_conflist_exists(net_harness: Any) -> None:
    h = net_harness
    ready = False
    h.ctx.network_ready = lambda: ready
    worker = PodWorker(h.ctx, pod_dict(containers=1))
    task = await run(worker)
    try:
        await until(lambda: bool(waiting(worker)) and waiting(worker)[0][0] == "NetworkNotReady", "NetworkNotReady")
        assert "spec.podCIDR" in waiting(worker)[0][1]
        assert worker.status["phase"] == "Pending" and h.driver.calls == [] and h.net.calls == []
        ready = True
        worker.poke()  # what the agent does once the conflist is written
        await until(lambda: worker.status.get("phase") == "Running", "Running after the network is ready")
        assert worker.status["podIP"].startswith("10.77.3.")
    finally:
        task.cancel()


@sync
async def test_a_network_error_is_shown_and_retried(net_harness: Any) -> None:
    h = net_harness
    h.net.fail_next_setup = "CNI plugin 'bridge' ADD failed (code 11): no IP addresses available"
    worker = PodWorker(h.ctx, pod_dict(containers=1))
    task = await run(worker)
    try:
        await until(lambda: bool(waiting(worker)) and waiting(worker)[0][0] == "NetworkNotReady", "NetworkNotReady")
        assert "no IP addresses available" in waiting(worker)[0][1] and h.driver.calls == []
        await until(lambda: worker.status.get("phase") == "Running", "Running after the retry (1 s backoff)")
    finally:
        task.cancel()


@sync
async def test_a_bad_bandwidth_annotation_names_the_annotation(net_harness: Any) -> None:
    pod = pod_dict(containers=1)
    pod["metadata"]["annotations"] = {"kubernetes.io/ingress-bandwidth": "fast"}
    worker = PodWorker(net_harness.ctx, pod)
    task = await run(worker)
    try:
        await until(lambda: bool(waiting(worker)) and waiting(worker)[0][0] == "CreateContainerConfigError", "error")
        assert "kubernetes.io/ingress-bandwidth" in waiting(worker)[0][1] and net_harness.net.calls == []
    finally:
        task.cancel()


@sync
async def test_host_network_pods_skip_pod_networking(net_harness: Any) -> None:
    h = net_harness
    h.ctx.network_ready = lambda: False  # no conflist needed either
    pod = pod_dict(containers=1)
    pod["spec"]["hostNetwork"] = True
    worker = PodWorker(h.ctx, pod)
    task = await run(worker)
    try:
        await until(lambda: worker.status.get("phase") == "Running", "Running")
        spec = h.driver._entries["u1-c0"].spec
        assert [(j.type, j.path) for j in spec.join_namespaces] == [("network", f"/proc/{os.getpid()}/ns/net")]
        assert worker.status["podIP"] == "10.1.1.1" and h.net.calls == []
    finally:
        task.cancel()


@sync
async def test_teardown_removes_containers_then_the_sandbox(net_harness: Any) -> None:
    h = net_harness
    seen: list[list[str]] = []
    teardown = h.net.teardown

    async def recording(uid: str) -> None:
        seen.append([info.id for info in await h.driver.recover()])
        await teardown(uid)

    h.net.teardown = recording
    worker = PodWorker(h.ctx, pod_dict())
    h.cache.put_pod(worker.pod)
    task = await run(worker)
    await until(lambda: worker.status.get("phase") == "Running", "Running")
    worker.delete()
    await asyncio.wait_for(task, 5)
    assert seen == [[]] and h.net.sandboxes == {}


@sync
async def test_an_adopted_pod_keeps_its_recovered_address(net_harness: Any) -> None:
    h = net_harness
    sandbox = await h.net.setup("u1", "web", "default")
    first = PodWorker(h.ctx, pod_dict())
    task = await run(first)
    await until(lambda: first.status.get("phase") == "Running", "Running")
    task.cancel()
    h.ctx.sandboxes["u1"] = sandbox  # what Agent.run puts there from NodeNetwork.recover
    adopted = PodWorker(h.ctx, pod_dict())
    task = await run(adopted)
    try:
        await until(lambda: adopted.status.get("phase") == "Running", "adopted")
        assert adopted.status["podIP"] == sandbox.ip and h.driver.calls.count(("create", "u1-c0")) == 1
    finally:
        task.cancel()
