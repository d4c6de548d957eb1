"""A real agent on this machine: joins a real server, runs pods under runc from a loopback registry,
survives kill -9 without restarting containers, and cleans up everything when pods are deleted."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
from agentenv import AgentEnv, Server, wait_until


def pod_manifest(name: str, image: str, node: str = "edge-1", containers: int = 1) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": f"c{i}", "image": image,
                                     "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}
                                    for i in range(containers)]}}


def get_pod(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/namespaces/default/pods/{name}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def is_running(http: httpx.Client, name: str) -> bool:
    pod = get_pod(http, name)
    return pod["status"].get("phase") == "Running" and all(
        s["state"] == "Running" for s in pod["status"].get("containerStatuses") or [{"state": "none"}])


def create_and_time(http: httpx.Client, manifest: dict[str, Any]) -> float:
    started = time.monotonic()
    assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201
    wait_until(lambda: is_running(http, manifest["metadata"]["name"]), 30, f"pod {manifest['metadata']['name']}",
               interval=0.005)
    return time.monotonic() - started


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_agent_runs_pods_under_runc_and_survives_kill_9(agent_env: AgentEnv, server: Server, image: str) -> None:
    agent = agent_env.start("--labels", "shoal.io/zone=lab,tier=edge", token=server.join_token)
    with server.http() as http:
        node = wait_until(lambda: http.get("/api/v1/nodes/edge-1").status_code == 200
                          and http.get("/api/v1/nodes/edge-1").json(), 30, "node registration")
        assert node["metadata"]["labels"]["shoal.io/zone"] == "lab"
        assert node["metadata"]["labels"]["shoal.io/arch"] in ("amd64", "arm64", "arm")
        capacity = node["status"]["capacity"]
        assert int(capacity["cpu"]) >= 1 and capacity["pods"] == "110" and capacity["memory"].endswith("Ki")
        assert node["status"]["runtimes"] == ["oci", "wasm"]  # runc + conmon; wasmtime for the wasm host
        assert node["status"]["nodeInfo"]["kernelVersion"] == os.uname().release
        wait_until(lambda: http.get("/api/v1/nodes/edge-1").json()["status"].get("phase") == "Online", 20,
                   "node Online (heartbeats)")

        # First pod pulls the image from the registry; the second finds it present.
        create_and_time(http, pod_manifest("web", image, containers=2))
        latency = create_and_time(http, pod_manifest("api", image))
        print(f"\ncreate→Running with the image present: {latency * 1000:.0f} ms")
        assert latency < 2.0

        containers = agent_env.runc_list()
        web = get_pod(http, "web")
        ids = [s["containerId"] for s in web["status"]["containerStatuses"]]
        assert all(containers[cid][1] == "running" for cid in ids)
        assert web["status"]["hostIP"] and web["status"]["startTime"]
        assert {c["type"]: c["status"] for c in web["status"]["conditions"]}["Ready"] == "True"
        listing = server.cli("get", "pods")
        assert listing.returncode == 0 and "web" in listing.stdout and "Running" in listing.stdout
        # The pod sandbox: the second container shares the first one's network and UTS namespaces.
        first, second = (containers[cid][0] for cid in ids)
        for ns in ("net", "uts", "ipc"):
            assert os.readlink(f"/proc/{first}/ns/{ns}") == os.readlink(f"/proc/{second}/ns/{ns}")

        for i in range(3):
            create_and_time(http, pod_manifest(f"extra-{i}", image))
        rss = rss_mb(agent.pid)
        print(f"agent RSS with 5 pods running: {rss:.1f} MB")

        # kill -9: containers keep running with the same PIDs.
        identity = (agent_env.data_dir / "identity.json").read_bytes(), (agent_env.data_dir / "node.crt").read_bytes()
        before = agent_env.runc_list()
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)
        time.sleep(1)
        assert agent_env.runc_list() == before

        # Restarted on the same data dir (no token needed): adopted, not restarted.
        restarted = agent_env.start()
        time.sleep(3)
        assert restarted.poll() is None, agent_env.logs()
        assert agent_env.runc_list() == before
        for name in ("web", "api"):
            assert is_running(http, name)
            assert all(s["restartCount"] == 0 for s in get_pod(http, name)["status"]["containerStatuses"])
        print(f"restarted agent RSS after adopting 5 pods: {rss_mb(restarted.pid):.1f} MB")
        # Same node: it did not join again (no new token or certificate).
        assert ((agent_env.data_dir / "identity.json").read_bytes(),
                (agent_env.data_dir / "node.crt").read_bytes()) == identity

        # Deleting pods stops and removes containers, overlay mounts and cgroups.
        for name in ("web", "api", "extra-0", "extra-1", "extra-2"):
            assert http.delete(f"/api/v1/namespaces/default/pods/{name}").status_code == 200
        wait_until(lambda: not agent_env.runc_list(), 30, "all containers removed")
        wait_until(lambda: not agent_env.mounts() and not agent_env.cgroup_dirs(), 10, "no mounts or cgroups left")
        wait_until(lambda: not [p for p in (agent_env.data_dir / "containers").iterdir()
                                if not p.name.startswith(".")] and not list((agent_env.data_dir / "pods").iterdir()),
                   10, "no container or pod dirs left")
        assert rss <= 45, f"agent RSS {rss:.1f} MB is over budget"


def test_agent_refuses_a_server_whose_ca_does_not_match_the_token(agent_env: AgentEnv, server: Server) -> None:
    pin, secret = server.join_token.removeprefix("shoal-").split("::", 1)
    forged = f"shoal-{'0' * 64}::{secret}"
    proc = agent_env.start(token=forged)
    assert proc.wait(timeout=30) == 1
    logs = agent_env.logs()
    assert pin in logs and "0" * 64 in logs and "Traceback" not in logs
    assert not (agent_env.data_dir / "identity.json").exists()


def test_agent_refuses_a_wrong_join_secret(agent_env: AgentEnv, server: Server) -> None:
    pin = server.join_token.split("::", 1)[0]
    proc = agent_env.start(token=f"{pin}::not-the-secret")
    assert proc.wait(timeout=30) == 1
    assert "refused the join token" in agent_env.logs()
