"""A node without its server: workloads keep running, a crashing container is restarted, an agent
restart brings the pods back from the local cache (adopted, not recreated), and when the server
returns the status is reconciled without restarting any healthy pod. Deleting pods stops their
containers (SIGTERM, then SIGKILL after the grace period) and leaves no mounts or cgroups."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
from agentenv import AgentEnv, Server, kill_group, wait_until

from tests.e2e.agent.conftest import Restartable

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def pod(name: str, image: str, script: str, containers: int = 1, grace: int = 2) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "edge-1", "restartPolicy": "Always", "terminationGracePeriodSeconds": grace,
                     "containers": [{"name": f"c{i}", "image": image, "command": ["sh", "-c", script]}
                                    for i in range(containers)]}}


def statuses(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    response = http.get(f"/api/v1/namespaces/default/pods/{name}")
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["status"].get("containerStatuses") or []
    return found


def running(http: httpx.Client, name: str) -> bool:
    found = statuses(http, name)
    return bool(found) and all(s["state"] == "Running" for s in found)


def pids_of(env: AgentEnv, ids: list[str]) -> dict[str, int]:
    listing = env.runc_list()
    return {cid: listing[cid][0] for cid in ids if cid in listing and listing[cid][1] == "running"}


def test_offline_autonomy_and_reconnect(agent_env: AgentEnv, restartable: Restartable, image: str) -> None:
    server = restartable.current
    assert server is not None
    agent = agent_env.start(token=server.join_token)
    with server.http() as http:
        wait_until(lambda: http.get("/api/v1/nodes/edge-1").status_code == 200, 30, "node registration")
        for manifest in (pod("steady", image, LOOP, containers=2), pod("calm", image, LOOP),
                         pod("crashy", image, "sleep 2; exit 1")):
            assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201
        for name in ("steady", "calm", "crashy"):
            wait_until(lambda n=name: running(http, n), 60, f"pod {name} Running")
        healthy = {name: statuses(http, name) for name in ("steady", "calm")}
        crashy_id = statuses(http, "crashy")[0]["containerId"]
    healthy_ids = [s["containerId"] for sts in healthy.values() for s in sts]
    healthy_pids = pids_of(agent_env, healthy_ids)
    assert len(healthy_pids) == 3

    # 1. The server goes away. Workloads keep running; the crashing container is restarted.
    restartable.stop()
    seen = {pids_of(agent_env, [crashy_id]).get(crashy_id, 0)}

    def crashy_restarted(times: int) -> bool:
        seen.add(pids_of(agent_env, [crashy_id]).get(crashy_id, 0))
        return len(seen - {0}) > times

    wait_until(lambda: crashy_restarted(2), 30, "crashy restarted twice while the server is down", 0.1)
    assert pids_of(agent_env, healthy_ids) == healthy_pids

    # 2. The agent restarts while the server is still down: pods come back from its cache, adopted.
    kill_group(agent, signal.SIGTERM)
    assert agent.returncode == 0, agent_env.logs()
    assert pids_of(agent_env, healthy_ids) == healthy_pids  # stopping the agent leaves containers alone
    before_restart = len(seen - {0})
    agent_env.start()
    wait_until(lambda: crashy_restarted(before_restart), 30, "crashy restarted by the agent restarted offline", 0.1)
    assert pids_of(agent_env, healthy_ids) == healthy_pids
    assert "Traceback" not in agent_env.logs()

    # 3. The server returns on the same data dir and port: status is reconciled, nobody healthy restarted.
    server = restartable.start()
    with server.http() as http:
        def reconciled() -> bool:
            crashy = statuses(http, "crashy")
            return bool(crashy) and crashy[0]["restartCount"] >= len(seen - {0}) - 1 and all(
                running(http, name) for name in healthy)

        wait_until(reconciled, 40, "status reconciled after the server returned", 0.2)
        time.sleep(3)  # a few heartbeats and syncs later, still nothing restarted
        for name, before in healthy.items():
            after = statuses(http, name)
            assert [(s["containerId"], s["restartCount"], s["startedAt"]) for s in after] == [
                (s["containerId"], s["restartCount"], s["startedAt"]) for s in before], name
            assert all(s["restartCount"] == 0 for s in after)
        phase = http.get("/api/v1/namespaces/default/pods/steady").json()["status"]["phase"]
        assert phase == "Running"
    assert pids_of(agent_env, healthy_ids) == healthy_pids


def test_deleting_pods_stops_them_gracefully_and_leaks_nothing(agent_env: AgentEnv, restartable: Restartable,
                                                               image: str) -> None:
    server: Server | None = restartable.current
    assert server is not None
    mounts_before, cgroups_before = len(agent_env.mounts()), len(agent_env.cgroup_dirs())
    agent_env.start(token=server.join_token)
    with server.http() as http:
        wait_until(lambda: http.get("/api/v1/nodes/edge-1").status_code == 200, 30, "node registration")
        polite = pod("polite", image, LOOP, containers=2, grace=10)
        stubborn = pod("stubborn", image, "trap '' TERM; while true; do sleep 1; done", grace=3)
        for manifest in (polite, stubborn):
            assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201
        for name in ("polite", "stubborn"):
            wait_until(lambda n=name: running(http, n), 60, f"pod {name} Running")
        ids = {name: [s["containerId"] for s in statuses(http, name)] for name in ("polite", "stubborn")}
        assert len(agent_env.mounts()) > mounts_before and len(agent_env.cgroup_dirs()) > cgroups_before

        started = time.monotonic()
        for name in ("polite", "stubborn"):
            assert http.delete(f"/api/v1/namespaces/default/pods/{name}").status_code == 200
        gone: dict[str, float] = {}

        def all_gone() -> bool:
            listing = agent_env.runc_list()
            for name, cids in ids.items():
                if name not in gone and not any(cid in listing for cid in cids):
                    gone[name] = time.monotonic() - started
            return len(gone) == 2

        wait_until(all_gone, 30, "both pods' containers removed", 0.05)
    # SIGTERM ends the polite pod well inside its 10 s grace; the stubborn one ignores it and is
    # killed once its 3 s grace period is over.
    assert gone["polite"] < 3.0, gone
    assert 3.0 <= gone["stubborn"] < 10.0, gone
    wait_until(lambda: len(agent_env.mounts()) == mounts_before and len(agent_env.cgroup_dirs()) == cgroups_before
               and not list((agent_env.data_dir / "pods").iterdir()), 10,
               "mounts, cgroups and pod dirs back to what they were")
