"""Two nodes on one LAN segment: each gets its own podCIDR, host-gw routes carry pod traffic between
them, a Service's ClusterIP reaches backends on both nodes from either node, and nothing is left."""

from __future__ import annotations

import collections
import ipaddress
import subprocess
from typing import Any

import httpx
from agentenv import AgentEnv, wait_until
from netenv import in_netns

from tests.e2e.net.conftest import LAN, Fleet

HTTPD = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
SHOAL_ROUTES = ("ip", "route", "show", "proto", "83")
IDLE = "trap 'exit 0' TERM; while true; do sleep 1; done"


def pod(name: str, node: str, image: str, command: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", command]}]}}


def running(http: httpx.Client, name: str) -> dict[str, Any]:
    body = http.get(f"/api/v1/namespaces/default/pods/{name}").json()
    status = body.get("status") or {}
    ok = status.get("phase") == "Running" and status.get("podIP") and all(
        s["state"] == "Running" for s in status.get("containerStatuses") or [{"state": "none"}])
    return dict(body) if ok else {}


def wget(env: AgentEnv, uid: str, url: str) -> str:
    done = subprocess.run(["runc", "--root", str(env.runc_root), "exec", f"{uid}-main", "timeout", "5", "wget",
                           "-qO-", url], capture_output=True, text=True, timeout=15)
    return done.stdout.strip()


def test_pods_on_two_nodes_reach_each_other_and_a_service_spans_both(fleet: Fleet) -> None:
    with fleet.server.http() as http:
        for name, env in fleet.nodes.items():
            env.start(token=fleet.server.join_token, name=name)
        cidrs: dict[str, str] = {}
        for name in fleet.nodes:
            node = wait_until(lambda n=name: (r := http.get(f"/api/v1/nodes/{n}")).status_code == 200
                              and r.json()["spec"].get("podCIDR") and r.json()["status"].get("phase") == "Online"
                              and r.json(), 30, f"node {name} Online with a podCIDR")
            cidrs[name] = node["spec"]["podCIDR"]
            addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
            assert addresses["InternalIP"].startswith(f"{LAN}.")
        assert cidrs["node-a"] != cidrs["node-b"]
        # host-gw: each node routes the other's pod CIDR via its LAN address, marked proto 83
        for name, env in fleet.nodes.items():
            other = "node-b" if name == "node-a" else "node-a"
            assert env.netns is not None
            wait_until(lambda e=env, o=other: cidrs[o] in in_netns(e.netns, *SHOAL_ROUTES).stdout, 15,
                       f"{name}'s route to {other}'s pods")

        for i, name in enumerate(fleet.nodes):
            created = http.post("/api/v1/namespaces/default/pods",
                                json=pod(f"web-{i}", name, fleet.image, HTTPD, {"app": "web"}))
            assert created.status_code == 201
            assert http.post("/api/v1/namespaces/default/pods",
                             json=pod(f"client-{i}", name, fleet.image, IDLE)).status_code == 201
        service = {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
        assert http.post("/api/v1/namespaces/default/services", json=service).status_code == 201
        pods = {n: wait_until(lambda n=n: running(http, n), 60, f"pod {n} Running")
                for n in ("web-0", "web-1", "client-0", "client-1")}
        for i, name in enumerate(fleet.nodes):
            assert ipaddress.ip_address(pods[f"web-{i}"]["status"]["podIP"]) in ipaddress.ip_network(cidrs[name])

        # pod → pod across nodes, both ways
        for i, (name, env) in enumerate(fleet.nodes.items()):
            client = pods[f"client-{i}"]["metadata"]["uid"]
            remote = pods[f"web-{1 - i}"]["status"]["podIP"]
            assert wait_until(lambda e=env, c=client, r=remote: wget(e, c, f"http://{r}:8080/"), 10,
                              f"{name} → remote pod") == f"web-{1 - i}"

        # the ClusterIP from either node answers from both backends, alternating
        vip = http.get("/api/v1/namespaces/default/services/web").json()["spec"]["clusterIP"]
        for i, (name, env) in enumerate(fleet.nodes.items()):
            client = pods[f"client-{i}"]["metadata"]["uid"]
            wait_until(lambda e=env, c=client: {wget(e, c, f"http://{vip}/") for _ in range(2)} == {"web-0", "web-1"},
                       30, f"{name}: ClusterIP answering from both nodes", interval=0.2)
            answers = [wget(env, client, f"http://{vip}/") for _ in range(6)]
            assert collections.Counter(answers) == {"web-0": 3, "web-1": 3}, answers

        for name in ("web-0", "web-1", "client-0", "client-1"):
            assert http.delete(f"/api/v1/namespaces/default/pods/{name}").status_code == 200
        for name, env in fleet.nodes.items():
            wait_until(lambda e=env: not e.runc_list(), 30, f"{name}: containers removed")
            assert env.netns is not None
            wait_until(lambda e=env: not in_netns(e.netns, "ip", "-o", "link", "show", "master", e.bridge).stdout
                       and not e.mounts(), 15, f"{name}: no pod veth or network namespace left")
