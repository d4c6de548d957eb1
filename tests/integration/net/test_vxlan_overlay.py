"""Pods on two hosts in different subnets, joined only by a router that knows nothing of pod CIDRs,
reach each other over shoal's VXLAN overlay; host-gw alone cannot route there, and a node removed
from the desired map takes its FDB entry, neighbor and route (the last one the device) with it.
Every host, pod and the router are network namespaces under the test's tmp dir (see netlab)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.net.netlab import ROOT, Host, Lab, ping, sh

_SYNC = """
import asyncio, dataclasses, json, sys
from shoal.net.routes import RouteError
from shoal.net.vxlan import OverlayRoutes
args = json.loads(sys.argv[1])
try:
    plan = asyncio.run(OverlayRoutes(args["mode"], args["local"]).sync(args["desired"]))
except RouteError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"ok": dataclasses.asdict(plan) | {"empty": plan.empty}}))
"""

_SERVE = """
import socket
s = socket.create_server(("0.0.0.0", 7000))
s.settimeout(60)
c, _ = s.accept()
c.sendall(b"hello from pod b")
c.close()
"""

_CONNECT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=5)
print(c.recv(100).decode())
"""


def overlay_sync(host: Host, desired: dict[str, str], mode: str = "auto") -> dict[str, Any]:
    done = subprocess.run(["nsenter", f"--net={host.netns}", sys.executable, "-c", _SYNC,
                           json.dumps({"mode": mode, "local": host.address, "desired": desired})],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, f"overlay sync on {host.name} crashed:\n{done.stderr}"
    reply: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return reply


def applied(host: Host, desired: dict[str, str]) -> dict[str, Any]:
    reply = overlay_sync(host, desired)
    assert "ok" in reply, f"overlay sync on {host.name} failed: {reply['error']}"
    plan: dict[str, Any] = reply["ok"]
    return plan


def wire(lab: Lab, host: Host, router: Host, gateway: str) -> Path:
    """Host uplink to the router, a bridge for pods and one pod; returns the pod's netns."""
    sh("ip", "link", "add", "uplink", "type", "veth", "peer", "name", f"to-{host.name}", "netns", str(router.netns),
       netns=host.netns)
    sh("ip", "addr", "add", f"{host.address}/24", "dev", "uplink", netns=host.netns)
    sh("ip", "link", "set", "uplink", "up", netns=host.netns)
    sh("ip", "addr", "add", f"{gateway}/24", "dev", f"to-{host.name}", netns=router.netns)
    sh("ip", "link", "set", f"to-{host.name}", "up", netns=router.netns)
    sh("ip", "route", "add", "default", "via", gateway, netns=host.netns)
    prefix = host.pod_cidr.rsplit(".", 1)[0]
    sh("ip", "link", "add", "podbr", "type", "bridge", netns=host.netns)
    sh("ip", "addr", "add", f"{prefix}.1/24", "dev", "podbr", netns=host.netns)
    sh("ip", "link", "set", "podbr", "up", netns=host.netns)
    pod = lab.base / "pods" / host.name
    pod.parent.mkdir(parents=True, exist_ok=True)
    pod.touch()
    sh("unshare", f"--net={pod}", "true")
    sh("ip", "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", str(pod), netns=host.netns)
    sh("ip", "link", "set", "vpod", "master", "podbr", "up", netns=host.netns)
    for argv in (("ip", "link", "set", "lo", "up"), ("ip", "addr", "add", f"{prefix}.2/24", "dev", "eth0"),
                 ("ip", "link", "set", "eth0", "up"), ("ip", "route", "add", "default", "via", f"{prefix}.1")):
        sh(*argv, netns=pod)
    return pod


def tcp_hello(pod: Path, address: str) -> str:
    for _ in range(50):  # the server may not listen yet: at most ~5 s
        done = subprocess.run(["nsenter", f"--net={pod}", sys.executable, "-c", _CONNECT, address],
                              capture_output=True, text=True, timeout=15)
        if done.returncode == 0:
            return done.stdout.strip()
        time.sleep(0.1)
    raise AssertionError(f"no TCP answer from {address}: {done.stderr.strip()}")


def test_pods_in_routed_subnets_talk_over_vxlan(lab: Lab) -> None:
    router = lab.host("rt", "198.18.1.1", "")
    a = lab.host("ha", "198.18.1.2", "10.77.1.0/24")
    b = lab.host("hb", "198.18.2.2", "10.77.2.0/24")
    pod_a, pod_b = wire(lab, a, router, "198.18.1.1"), wire(lab, b, router, "198.18.2.1")
    assert ping(str(a.netns), b.address), "the router does not join the two hosts"
    assert not ping(str(pod_a), "10.77.2.2"), "pods reached each other without shoal's routes"

    # host-gw cannot work through a router, and says why
    refused = overlay_sync(a, {b.pod_cidr: b.address}, mode="host-gw")
    assert "host-gw needs a node address on a directly connected network" in refused["error"]

    plan = applied(a, {b.pod_cidr: b.address})
    assert plan["create_device"] and plan["vxlan_routes"]["add"] == [[b.pod_cidr, b.address]]
    assert plan["host_gw"]["add"] == []
    assert applied(b, {a.pod_cidr: a.address})["create_device"]
    link = sh("ip", "-d", "link", "show", "shoal.vx", netns=a.netns)
    assert "vxlan id 7777" in link and "local 198.18.1.2" in link and "dstport 8472" in link
    assert "nolearning" in link and "mtu 1450" in link and "0e:53:c6:12:01:02" in link
    assert "0e:53:c6:12:02:02 dst 198.18.2.2" in sh("bridge", "fdb", "show", "dev", "shoal.vx", netns=a.netns)
    assert f"{b.pod_cidr} via {b.address} dev shoal.vx proto 83 onlink" in sh("ip", "route", netns=a.netns)
    assert "10.77." not in sh("ip", "route", netns=router.netns)  # the router never learns pod CIDRs

    assert ping(str(pod_a), "10.77.2.2") and ping(str(pod_b), "10.77.1.2"), "pods cannot reach each other"
    lab.spawn(str(pod_b), sys.executable, "-c", _SERVE)
    assert tcp_hello(pod_a, "10.77.2.2") == "hello from pod b"
    assert applied(a, {b.pod_cidr: b.address})["empty"]  # a second sync changes nothing

    # a third node comes and goes: only its entries change, node b keeps working
    both = {b.pod_cidr: b.address, "10.77.3.0/24": "198.18.3.2"}
    assert applied(a, both)["fdb_add"] == [["0e:53:c6:12:03:02", "198.18.3.2"]]
    assert "dst 198.18.3.2" in sh("bridge", "fdb", "show", "dev", "shoal.vx", netns=a.netns)
    gone = applied(a, {b.pod_cidr: b.address})
    assert gone["vxlan_routes"]["remove"] == ["10.77.3.0/24"] and gone["neighbors_remove"] == ["198.18.3.2"]
    assert "198.18.3.2" not in sh("bridge", "fdb", "show", "dev", "shoal.vx", netns=a.netns)
    assert "198.18.3.2" not in sh("ip", "neigh", "show", "dev", "shoal.vx", netns=a.netns)
    assert "10.77.3.0/24" not in sh("ip", "route", netns=a.netns)
    assert ping(str(pod_a), "10.77.2.2")

    # the last remote node removed: the device goes with its routes
    assert applied(a, {})["delete_device"]
    assert "shoal.vx" not in a.links() and "proto 83" not in sh("ip", "route", netns=a.netns)
    assert not ping(str(pod_a), "10.77.2.2")
    assert "shoal.vx" not in sh("ip", "-br", "link")  # nothing in the machine's own namespace
