"""Three hosts made by `shoal cluster up`: pods on different hosts reach each other by pod IP, a
Service's ClusterIP answers from each of 3 backends in turn, its NodePort answers on every host's
address, and losing a host (agent and containers killed) removes its endpoints while traffic keeps
flowing and its Deployment pods come back elsewhere. A partitioned host that returns stops its
replaced pods and never restarted the others. `shoal cluster down` leaves nothing (the fixture)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from agentenv import wait_until

from shoal.fleet.layout import NodeLayout
from tests.e2e.fleet.conftest import Fleet

HTTPD = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
IDLE = "trap 'exit 0' TERM; while true; do sleep 1; done"


def deployment(image: str, replicas: int = 3) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "main", "image": image,
                                                           "command": ["sh", "-c", HTTPD],
                                                           "ports": [{"containerPort": 8080}]}]}}}}


def bare_pod(name: str, node: str, image: str, command: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", command]}]}}


def web_pods(http: httpx.Client) -> list[dict[str, Any]]:
    """The Deployment's pods that are Running and Ready, not being deleted."""
    items = http.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=web"}).json()["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and (p.get("status") or {}).get("phase")
            == "Running" and any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in p["status"].get("conditions") or [])]


def pod(http: httpx.Client, name: str) -> dict[str, Any]:
    return dict(http.get(f"/api/v1/namespaces/default/pods/{name}").json())


def in_pod(node: NodeLayout, uid: str, *argv: str) -> str:
    done = subprocess.run(["runc", "--root", node.runc_root, "exec", f"{uid}-main", *argv], capture_output=True,
                          text=True, timeout=15)
    return done.stdout.strip()


def wget(node: NodeLayout, uid: str, url: str) -> str:
    return in_pod(node, uid, "timeout", "3", "wget", "-qO-", url)  # busybox 1.35's wget crashes with -T


def pid_of(node: NodeLayout, uid: str) -> int:
    state = subprocess.run(["runc", "--root", node.runc_root, "state", f"{uid}-main"], capture_output=True,
                           text=True, timeout=15)
    return int(json.loads(state.stdout)["pid"]) if state.returncode == 0 else 0


def kill_host(node: NodeLayout) -> None:
    """Every process of the host: its agent, then its containers (their conmons exit with them)."""
    os.kill(int(Path(node.pid_file).read_text().strip()), signal.SIGKILL)
    ids = subprocess.run(["runc", "--root", node.runc_root, "list", "-q"], capture_output=True, text=True,
                         timeout=15).stdout.split()
    for cid in ids:
        subprocess.run(["runc", "--root", node.runc_root, "kill", cid, "KILL"], capture_output=True, timeout=15)


def start(fleet: Fleet) -> tuple[httpx.Client, dict[str, Any], dict[str, NodeLayout]]:
    http = fleet.http()
    nodes = {n.name: n for n in fleet.layout.nodes}
    assert http.post("/api/v1/namespaces/default/deployments", json=deployment(fleet.image)).status_code == 201
    service = {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    assert http.post("/api/v1/namespaces/default/services", json=service).status_code == 201
    wait_until(lambda: len(web_pods(http)) == 3, 120, "3 web pods Running and Ready")
    return http, http.get("/api/v1/namespaces/default/services/web").json(), nodes


def test_three_hosts_pods_services_nodeport_and_losing_a_host(fleet: Fleet) -> None:
    http, service, nodes = start(fleet)
    first = fleet.layout.nodes[0]
    assert http.post("/api/v1/namespaces/default/pods", json=bare_pod("client", first.name, fleet.image,
                                                                      IDLE)).status_code == 201
    wait_until(lambda: (pod(http, "client").get("status") or {}).get("phase") == "Running", 60, "client Running")
    client = pod(http, "client")["metadata"]["uid"]
    webs = web_pods(http)
    assert {p["spec"]["nodeName"] for p in webs} == set(nodes), "Spread puts one replica on each host"

    for web in webs:  # pod → pod by IP, to each host
        answer = wait_until(lambda w=web: wget(first, client, f"http://{w['status']['podIP']}:8080/"), 15,
                            f"client → {web['metadata']['name']}")
        assert answer == web["metadata"]["name"]

    vip = service["spec"]["clusterIP"]
    names = {p["metadata"]["name"] for p in webs}
    wait_until(lambda: {wget(first, client, f"http://{vip}/") for _ in range(3)} == names, 30,
               "the ClusterIP answering from all 3 backends", interval=0.2)
    answers = [wget(first, client, f"http://{vip}/") for _ in range(9)]
    assert collections.Counter(answers) == {n: 3 for n in names}, answers
    assert answers[:3] == answers[3:6] == answers[6:], f"not round-robin: {answers}"

    node_port = service["spec"]["ports"][0]["nodePort"]
    for node in nodes.values():  # from this machine, through each host's address
        got = wait_until(lambda n=node: httpx.get(f"http://{n.address}:{node_port}/", timeout=3).text.strip(), 15,
                         f"NodePort on {node.name}")
        assert got in names

    lost = fleet.layout.nodes[2]
    lost_pod = next(p["metadata"]["name"] for p in webs if p["spec"]["nodeName"] == lost.name)
    kill_host(lost)
    began = time.monotonic()

    def endpoints_left() -> bool:
        ep = http.get("/api/v1/namespaces/default/endpoints/web").json()
        ips = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
        return all(p["status"]["podIP"] not in ips for p in webs if p["spec"]["nodeName"] == lost.name)

    wait_until(endpoints_left, 30, f"{lost.name}'s endpoint removed")
    wait_until(lambda: len([p for p in web_pods(http) if p["spec"]["nodeName"] != lost.name]) == 3, 15,
               "the lost replica Running and Ready on another host")
    replaced_in = time.monotonic() - began
    print(f"\nthe lost host's replica was Running and Ready elsewhere {replaced_in:.1f} s after the host died")
    answers = [wget(first, client, f"http://{vip}/") for _ in range(12)]
    assert all(answers) and lost_pod not in answers, answers
    assert replaced_in < 15, f"the lost host's pod took {replaced_in:.1f} s to come back elsewhere"


def test_a_partitioned_host_returns_without_restarting_its_pods(fleet: Fleet) -> None:
    http, _, nodes = start(fleet)
    island = fleet.layout.nodes[1]
    assert http.post("/api/v1/namespaces/default/pods", json=bare_pod("keeper", island.name, fleet.image,
                                                                      IDLE)).status_code == 201
    wait_until(lambda: (pod(http, "keeper").get("status") or {}).get("phase") == "Running", 60, "keeper Running")
    keeper_uid = pod(http, "keeper")["metadata"]["uid"]
    keeper_pid = pid_of(island, keeper_uid)
    moved = next(p for p in web_pods(http) if p["spec"]["nodeName"] == island.name)
    moved_pid = pid_of(island, moved["metadata"]["uid"])
    assert keeper_pid and moved_pid

    subprocess.run(["ip", "link", "set", island.veth, "down"], check=True, timeout=10)  # the host's cable out
    try:
        wait_until(lambda: len([p for p in web_pods(http) if p["spec"]["nodeName"] != island.name]) == 3, 40,
                   "the partitioned host's replica replaced elsewhere")
        assert pid_of(island, keeper_uid) == keeper_pid, "the partitioned host keeps running its pods"
        assert pid_of(island, moved["metadata"]["uid"]) == moved_pid
    finally:
        subprocess.run(["ip", "link", "set", island.veth, "up"], check=True, timeout=10)
    wait_until(lambda: pid_of(island, moved["metadata"]["uid"]) == 0, 40, "the replaced pod stopped on its return")
    wait_until(lambda: (pod(http, "keeper").get("status") or {}).get("phase") == "Running", 30,
               "keeper reported Running again")
    assert pid_of(island, keeper_uid) == keeper_pid, "the returning host restarted a healthy pod"
    assert len(web_pods(http)) == 3
    assert island.name in nodes
