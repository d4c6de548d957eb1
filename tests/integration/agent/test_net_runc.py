"""Pod networking with a real agent, server, runc and the CNI plugins, in a network namespace of the
test's own: pods get addresses from the node's podCIDR and reach each other, a Service's ClusterIP
answers round-robin from its backends, and deleting pods leaves no netns, veth or IP reservation."""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from agentenv import AgentEnv, Server, wait_until
from netenv import in_netns

NODE = "edge-1"
HTTPD = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"


def pod(name: str, image: str, labels: dict[str, str] | None = None, command: str = HTTPD) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", command]}]}}


def status_of(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/namespaces/default/pods/{name}")
    response.raise_for_status()
    return dict(response.json().get("status") or {})


def running_ip(http: httpx.Client, name: str) -> str:
    status = status_of(http, name)
    running = status.get("phase") == "Running" and all(
        s["state"] == "Running" for s in status.get("containerStatuses") or [{"state": "none"}])
    return str(status.get("podIP") or "") if running else ""


def start_node(env: AgentEnv, server: Server, http: httpx.Client) -> str:
    env.start(token=server.join_token, name=NODE)

    def pod_cidr() -> str:
        response = http.get(f"/api/v1/nodes/{NODE}")
        node = response.json() if response.status_code == 200 else {}
        online = (node.get("status") or {}).get("phase") == "Online"
        return str((node.get("spec") or {}).get("podCIDR") or "") if online else ""

    return str(wait_until(pod_cidr, 30, "node Online with a podCIDR"))


def wget(env: AgentEnv, pod_uid: str, url: str) -> subprocess.CompletedProcess[str]:
    cid = f"{pod_uid}-main"
    # busybox 1.35's wget crashes with -T; timeout(1) bounds it instead
    return subprocess.run(["runc", "--root", str(env.runc_root), "exec", cid, "timeout", "5", "wget", "-qO-", url],
                          capture_output=True, text=True, timeout=15)


def uid_of(http: httpx.Client, name: str) -> str:
    return str(http.get(f"/api/v1/namespaces/default/pods/{name}").json()["metadata"]["uid"])


def veths(env: AgentEnv) -> list[str]:
    assert env.netns is not None
    out = in_netns(env.netns, "ip", "-j", "link", "show", "type", "veth")
    return [link["ifname"] for link in json.loads(out.stdout or "[]")]


def reservations(env: AgentEnv) -> list[str]:
    ipam = env.data_dir / "net" / "ipam"
    return sorted(p.name for p in ipam.glob("*/*") if p.name != "lock" and not p.name.startswith("last_reserved_ip"))


def delete_all(env: AgentEnv, http: httpx.Client, names: list[str]) -> None:
    for name in names:
        assert http.delete(f"/api/v1/namespaces/default/pods/{name}").status_code == 200
    wait_until(lambda: not env.runc_list(), 30, "all containers removed")
    netns_dir = env.base / "netns"

    def leftovers() -> dict[str, list[str]]:
        found = {"veths": veths(env), "reservations": reservations(env), "mounts": env.mounts(),
                 "netns": sorted(p.name for p in netns_dir.iterdir()) if netns_dir.is_dir() else []}
        return {k: v for k, v in found.items() if v}

    with contextlib.suppress(AssertionError):
        wait_until(lambda: not leftovers(), 15, "no veth, IP reservation or pod network namespace left")
    assert not leftovers()


def test_pods_get_addresses_from_the_pod_cidr_and_reach_each_other(net_env: AgentEnv, server: Server,
                                                                      image: str) -> None:
    with server.http() as http:
        cidr = ipaddress.ip_network(start_node(net_env, server, http))
        conflist_path = net_env.data_dir / "net" / "shoal.conflist"
        wait_until(conflist_path.exists, 15, "the agent writes its conflist once it knows its pod CIDR")
        conflist = json.loads(conflist_path.read_text())
        assert conflist["plugins"][0]["bridge"] == net_env.bridge
        assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": str(cidr)}]]
        for name in ("a", "b"):
            assert http.post("/api/v1/namespaces/default/pods", json=pod(name, image)).status_code == 201
        ips = {name: wait_until(lambda n=name: running_ip(http, n), 30, f"pod {name} Running with an IP")
               for name in ("a", "b")}
        assert ips["a"] != ips["b"]
        assert all(ipaddress.ip_address(ip) in cidr for ip in ips.values()), (ips, cidr)
        assert len(veths(net_env)) == 2
        for client, other in (("a", "b"), ("b", "a")):
            answer = wait_until(lambda c=client, o=other: wget(net_env, uid_of(http, c),
                                                               f"http://{ips[o]}:8080/").stdout, 10,
                                f"{client} → {other}")
            assert answer.strip() == other
        # kill -9 and restart: the sandboxes are recovered, not re-added (same addresses, same veths)
        links = sorted(veths(net_env))
        net_env.procs[-1].kill()
        net_env.procs[-1].wait(timeout=10)
        net_env.start(name=NODE)
        time.sleep(3)
        assert net_env.procs[-1].poll() is None, net_env.logs()
        assert {name: running_ip(http, name) for name in ips} == ips and sorted(veths(net_env)) == links
        assert len(reservations(net_env)) == 2
        assert wget(net_env, uid_of(http, "a"), f"http://{ips['b']}:8080/").stdout.strip() == "b"
        delete_all(net_env, http, ["a", "b"])
        assert not net_env.cgroup_dirs()


def test_service_cluster_ip_round_robins_across_three_backends(net_env: AgentEnv, server: Server,
                                                               image: str) -> None:
    with server.http() as http:
        start_node(net_env, server, http)
        backends = ["web-0", "web-1", "web-2"]
        for name in backends:
            manifest = pod(name, image, {"app": "web"})
            assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201
        idle = pod("client", image, command="trap 'exit 0' TERM; while true; do sleep 1; done")
        assert http.post("/api/v1/namespaces/default/pods", json=idle).status_code == 201
        service = {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
        assert http.post("/api/v1/namespaces/default/services", json=service).status_code == 201
        for name in [*backends, "client"]:
            wait_until(lambda n=name: running_ip(http, n), 30, f"pod {name} Running")
        vip = wait_until(lambda: http.get("/api/v1/namespaces/default/services/web").json()["spec"].get("clusterIP"),
                         10, "a ClusterIP")
        client = uid_of(http, "client")

        def all_backends_answer() -> bool:
            answers = {wget(net_env, client, f"http://{vip}/").stdout.strip() for _ in range(3)}
            return answers == set(backends)

        wait_until(all_backends_answer, 30, "the ClusterIP answering from all 3 backends", interval=0.2)
        answers = [wget(net_env, client, f"http://{vip}/").stdout.strip() for _ in range(9)]
        assert collections.Counter(answers) == {name: 3 for name in backends}, answers
        assert answers[:3] == answers[3:6] == answers[6:], f"not round-robin: {answers}"
        assert "table ip shoal" in in_netns(net_env.netns or Path("/"), "nft", "list", "tables").stdout
        delete_all(net_env, http, [*backends, "client"])


def test_pod_start_with_networking(net_env: AgentEnv, server: Server, image: str) -> None:
    """create→Running with a wired pod network (image present): p50 of 10."""
    idle = "trap 'exit 0' TERM; while true; do sleep 1; done"
    with server.http() as http:
        start_node(net_env, server, http)
        assert http.post("/api/v1/namespaces/default/pods", json=pod("warm", image, command=idle)).status_code == 201
        wait_until(lambda: running_ip(http, "warm"), 60, "the first pod (image pull)")
        times = []
        for i in range(10):
            began = time.monotonic()
            manifest = pod(f"p{i}", image, command=idle)
            assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201
            wait_until(lambda n=f"p{i}": running_ip(http, n), 30, f"pod p{i}", interval=0.005)
            times.append(time.monotonic() - began)
        p50 = statistics.median(times) * 1000
        with open(f"/proc/{net_env.procs[-1].pid}/status", encoding="ascii") as f:
            rss = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
        print(f"\ncreate→Running with pod networking: p50 {p50:.0f} ms, max {max(times) * 1000:.0f} ms; "
              f"agent RSS with 11 pods, routes and services: {rss:.1f} MB")
        assert p50 < 2000
        delete_all(net_env, http, ["warm", *(f"p{i}" for i in range(10))])
