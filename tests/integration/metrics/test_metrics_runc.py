"""Metrics end to end on this machine: a real agent runs a pod under runc; the metrics collector
(built here the way the agent wires it) serves cAdvisor-named series for the pod's container on
/metrics, pushes a usage sample with the node's own credentials, and ``shoal top`` shows it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from agentenv import AgentEnv, Server, wait_until
from prometheus_client.parser import text_string_to_metric_families

from shoal.agent.identity import load_identity
from shoal.agent.metrics import NodeMetrics, serve_metrics
from shoal.client import ApiError, AsyncClient, calls

# Holding ~4 MB in a shell variable makes the working set plainly visible in Mi.
HOLD = "a=$(cat /bin/busybox /bin/busybox /bin/busybox /bin/busybox); trap 'exit 0' TERM; while true; do sleep 1; done"


def node_pods(server: Server) -> list[dict[str, Any]]:
    with server.http() as http:
        items: list[dict[str, Any]] = http.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=edge-1"}
                                               ).json()["items"]
    return items


async def push(metrics: NodeMetrics, agent_env: AgentEnv, server: Server) -> None:
    identity = load_identity(agent_env.data_dir)
    assert identity is not None
    async with AsyncClient(identity.client_config(server.url)) as client:
        first = await asyncio.to_thread(metrics.read)
        await asyncio.sleep(0.5)
        await metrics.push_once(client, first)
        with pytest.raises(ApiError) as refused:  # a node pushes only its own usage
            await client.run(calls.Call("POST", "/api/v1/nodes/edge-2/metrics", calls.decode_body, body={}))
        assert refused.value.status_code == 403


def test_metrics_endpoint_push_and_top(agent_env: AgentEnv, server: Server, image: str) -> None:
    agent_env.start(token=server.join_token)
    manifest = {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {"nodeName": "edge-1", "terminationGracePeriodSeconds": 2,
                         "containers": [{"name": "app", "image": image, "command": ["sh", "-c", HOLD]}]}}
    with server.http() as http:
        wait_until(lambda: http.get("/api/v1/nodes/edge-1").status_code == 200, 30, "node registration")
        assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201

        def running() -> list[dict[str, Any]]:
            pods = node_pods(server)
            return pods if pods and pods[0]["status"].get("phase") == "Running" else []

        pods = wait_until(running, 60, "pod web Running")
    cid = pods[0]["status"]["containerStatuses"][0]["containerId"]
    metrics = NodeMetrics("edge-1", lambda: pods, agent_env.cgroup_parent, agent_env.data_dir, interval=1.0)
    endpoint = serve_metrics("127.0.0.1:0", metrics)
    assert endpoint is not None

    def scrape() -> dict[str, Any]:
        text = httpx.get(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=10).text
        return {s.name: s for fam in text_string_to_metric_families(text) for s in fam.samples
                if s.labels.get("pod") == "web"}

    def holding() -> dict[str, Any]:  # the shell has read its ~4 MB
        found = scrape()
        return found if found["container_memory_working_set_bytes"].value > 1 << 20 else {}

    try:
        series = wait_until(holding, 20, "a working set over 1 MiB on /metrics", interval=0.2)
    finally:
        endpoint.close()
    working_set = series["container_memory_working_set_bytes"]
    assert working_set.labels == {"namespace": "default", "pod": "web", "container": "app", "image": image,
                                  "name": cid, "id": f"{agent_env.cgroup_parent}/{pods[0]['metadata']['uid']}/{cid}"}
    assert series["container_cpu_usage_seconds_total"].value > 0
    assert series["container_processes"].value >= 1 and series["container_threads"].value >= 1

    before = server.cli("top", "nodes")
    assert before.returncode == 1
    assert "metrics not available yet for node edge-1: its agent pushes every 10 s" in before.stderr

    asyncio.run(push(metrics, agent_env, server))
    top_pods = server.cli("top", "pods", "--containers")
    assert top_pods.returncode == 0, top_pods.stderr
    header, row = top_pods.stdout.splitlines()[:2]
    assert header.split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert row.split()[:2] == ["web", "app"] and row.split()[3].endswith("Mi") and row.split()[3] != "0Mi"
    top_nodes = server.cli("top", "nodes")
    assert top_nodes.returncode == 0, top_nodes.stderr
    print(f"\n{top_pods.stdout}{top_nodes.stdout}")
    name, cpu, cpu_pct, memory, memory_pct = top_nodes.stdout.splitlines()[1].split()
    assert name == "edge-1" and cpu.endswith("m") and cpu_pct.endswith("%") and memory_pct.endswith("%")
    assert int(memory.removesuffix("Mi")) > 0


def test_push_loop_keeps_the_server_current(agent_env: AgentEnv, server: Server, tmp_path: Path) -> None:
    agent_env.start(token=server.join_token)
    with server.http() as http:
        wait_until(lambda: http.get("/api/v1/nodes/edge-1").status_code == 200, 30, "node registration")
    identity = load_identity(agent_env.data_dir)
    assert identity is not None
    metrics = NodeMetrics("edge-1", list, agent_env.cgroup_parent, tmp_path, interval=0.2)

    async def run() -> None:
        stop = asyncio.Event()
        async with AsyncClient(identity.client_config(server.url)) as client:
            task = asyncio.create_task(metrics.push_loop(client, stop))
            deadline = time.monotonic() + 10
            while metrics.pushed < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert metrics.pushed >= 2
    with server.http() as http:
        node = http.get("/apis/metrics.shoal.io/v1/nodes/edge-1").json()
    assert node["kind"] == "NodeMetrics" and node["usage"]["memory"] and node["window"].endswith("s")
