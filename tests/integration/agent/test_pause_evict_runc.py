"""Pause and node-pressure eviction on a real agent under runc: ``shoal pause`` freezes a pod's
containers in the cgroup freezer and ``shoal unpause`` thaws the same processes; a BestEffort pod
that eats memory below the agent's --eviction-hard threshold is killed and left Failed/Evicted with
an Event, while a Burstable and a Guaranteed pod on the same node keep running untouched."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from agentenv import AgentEnv, Server, kill_group, wait_until
from test_agent_runc import get_pod, is_running, pod_manifest

Mi = 1024 * 1024
HOG_MIB = 1024  # what the BestEffort pod holds: dd's buffer, blocked writing into a pipe nobody reads
MARGIN_MIB = 512  # the threshold sits this far below the memory available with an agent running (this
# machine is shared: other processes come and go by a few hundred MiB within seconds)


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def container(http: httpx.Client, name: str) -> dict[str, Any]:
    statuses: list[dict[str, Any]] = get_pod(http, name)["status"].get("containerStatuses") or [{}]
    return statuses[0]


def freezer_state(env: AgentEnv, cid: str) -> str:
    cgroup = (env.data_dir / "containers" / cid / "cgroup").read_text().strip("/")
    return (Path("/sys/fs/cgroup/freezer") / cgroup / "freezer.state").read_text().strip()


def test_pause_freezes_and_unpause_thaws_the_same_processes(agent_env: AgentEnv, server: Server, image: str) -> None:
    agent_env.start(token=server.join_token)
    with server.http() as http:
        assert http.post("/api/v1/namespaces/default/pods", json=pod_manifest("frozen", image)).status_code == 201
        wait_until(lambda: is_running(http, "frozen"), 60, "pod frozen running", 0.1)
        cid = container(http, "frozen")["containerId"]
        pid = agent_env.runc_list()[cid][0]
        assert freezer_state(agent_env, cid) == "THAWED"

        done = server.cli("pause", "frozen")
        assert done.returncode == 0 and done.stdout.strip() == "pod/frozen paused", done.stderr
        wait_until(lambda: conditions(get_pod(http, "frozen")).get("Paused") == "True", 20, "Paused=True", 0.1)
        assert agent_env.runc_list()[cid] == (pid, "paused") and freezer_state(agent_env, cid) == "FROZEN"
        status = container(http, "frozen")
        assert status["state"] == "Paused" and status["reason"] == "Paused" and status["ready"] is False
        pod = get_pod(http, "frozen")
        assert pod["metadata"]["annotations"]["shoal.io/paused"] == "true" and pod["status"]["phase"] == "Running"
        assert server.cli("pause", "pod/frozen").stdout.strip() == "pod/frozen already paused"

        done = server.cli("unpause", "frozen")
        assert done.returncode == 0 and done.stdout.strip() == "pod/frozen unpaused", done.stderr
        wait_until(lambda: conditions(get_pod(http, "frozen")).get("Paused") == "False", 20, "Paused=False", 0.1)
        wait_until(lambda: container(http, "frozen").get("state") == "Running", 10, "container Running", 0.1)
        assert agent_env.runc_list()[cid] == (pid, "running") and freezer_state(agent_env, cid) == "THAWED"
        assert "shoal.io/paused" not in (get_pod(http, "frozen")["metadata"].get("annotations") or {})
        assert container(http, "frozen")["restartCount"] == 0

        bad = server.cli("pause", "deploy/web")
        assert bad.returncode == 2 and "only pods can be paused" in bad.stderr


def mem_available() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


def with_resources(manifest: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    manifest["spec"]["containers"][0]["resources"] = resources
    return manifest


def test_memory_pressure_evicts_the_best_effort_pod_only(agent_env: AgentEnv, server: Server, image: str) -> None:
    first = agent_env.start("--eviction-hard", "", token=server.join_token)
    with server.http() as http:
        burstable = with_resources(pod_manifest("burstable", image), {"requests": {"memory": "16Mi"}})
        guaranteed = with_resources(pod_manifest("guaranteed", image),
                                    {"limits": {"cpu": "100m", "memory": "64Mi"}})
        for manifest in (burstable, guaranteed):
            assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201
        for name in ("burstable", "guaranteed"):
            wait_until(lambda n=name: is_running(http, n), 60, f"pod {name} running", 0.1)
        assert get_pod(http, "burstable")["status"]["qosClass"] == "Burstable"
        assert get_pod(http, "guaranteed")["status"]["qosClass"] == "Guaranteed"
        pids = {n: agent_env.runc_list()[container(http, n)["containerId"]][0] for n in ("burstable", "guaranteed")}

        # Same node, same containers, now with a threshold just below what is free while an agent runs.
        time.sleep(1)
        threshold_kib = (mem_available() - MARGIN_MIB * Mi) // 1024
        kill_group(first)
        agent_env.start("--eviction-hard", f"memory.available<{threshold_kib}Ki,nodefs.available<1%")
        wait_until(lambda: conditions(http.get("/api/v1/nodes/edge-1").json()).get("MemoryPressure") == "False",
                   30, "MemoryPressure=False on the node")

        hog = pod_manifest("hog", image)
        hog["spec"]["containers"][0]["command"] = [
            "sh", "-c", f"busybox dd if=/dev/zero bs={HOG_MIB}M count=1 | sleep 3600"]
        assert http.post("/api/v1/namespaces/default/pods", json=hog).status_code == 201
        seen_pressure = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            node = http.get("/api/v1/nodes/edge-1").json()
            seen_pressure = seen_pressure or conditions(node).get("MemoryPressure") == "True"
            if get_pod(http, "hog")["status"].get("reason") == "Evicted":
                break
            time.sleep(0.1)
        status = get_pod(http, "hog")["status"]
        assert status.get("phase") == "Failed" and status.get("reason") == "Evicted", (status, agent_env.logs())
        assert status["qosClass"] == "BestEffort"
        assert "memory.available was" in status["message"] and f"threshold {threshold_kib}Ki" in status["message"]
        assert "BestEffort pod was using" in status["message"]

        events = http.get("/api/v1/namespaces/default/events").json()["items"]
        evicted = [e for e in events if e["involvedObject"]["name"] == "hog" and e["reason"] == "Evicted"]
        assert len(evicted) == 1 and evicted[0]["involvedObject"]["kind"] == "Pod"
        assert evicted[0]["message"] == status["message"]

        wait_until(lambda: conditions(http.get("/api/v1/nodes/edge-1").json()).get("MemoryPressure") == "False",
                   30, "MemoryPressure=False once the hog is gone")
        while not seen_pressure and time.monotonic() < deadline:  # the True write may land just after the status
            seen_pressure = conditions(http.get("/api/v1/nodes/edge-1").json()).get("MemoryPressure") == "True"
            time.sleep(0.1)
        assert seen_pressure, "the node never showed MemoryPressure=True"
        assert conditions(http.get("/api/v1/nodes/edge-1").json())["DiskPressure"] == "False"

        time.sleep(3)  # a few eviction rounds and restart decisions later
        hog_cid = container(http, "hog")["containerId"]
        assert agent_env.runc_list()[hog_cid][1] == "stopped"
        assert get_pod(http, "hog")["status"]["phase"] == "Failed"
        for name in ("burstable", "guaranteed"):
            assert is_running(http, name), (get_pod(http, name)["status"], agent_env.logs())
            assert agent_env.runc_list()[container(http, name)["containerId"]][0] == pids[name]
            assert container(http, name)["restartCount"] == 0
