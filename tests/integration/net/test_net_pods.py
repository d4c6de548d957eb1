"""Two hosts (network namespaces on one veth segment), two pods each, wired by shoal.net with
Debian's CNI plugins and host-gw routes: pods reach each other on one host and across hosts by
pod IP; teardown releases every address and leaves no veth or namespace behind."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from tests.integration.net.netlab import BUSYBOX, Host, HostctlError, Lab, ping, sh


def two_hosts(lab: Lab) -> tuple[Host, Host]:
    a = lab.host("a", "198.18.77.1", "10.77.1.0/24")
    b = lab.host("b", "198.18.77.2", "10.77.2.0/24")
    lab.connect(a, b)
    for host in (a, b):
        assert host.ctl("conflist", cidr=host.pod_cidr) is True
    return a, b


def test_pods_reach_each_other_on_one_host_and_across_hosts(lab: Lab) -> None:
    a, b = two_hosts(lab)
    pods = {
        f"{h.name}{i}": h.ctl("setup", uid=f"pod-{h.name}{i}", name=f"web-{i}")
        for h in (a, b)
        for i in (1, 2)
    }
    assert [p["ip"] for p in pods.values()] == ["10.77.1.2", "10.77.1.3", "10.77.2.2", "10.77.2.3"]
    assert {p["gateway"] for p in pods.values()} == {"10.77.1.1", "10.77.2.1"}
    assert pods["a1"]["netns_path"] == str(a.pod_netns_dir / "pod-a1")
    # the pod sees its address on eth0 and a default route via the bridge
    addr = sh("ip", "-4", "-o", "addr", "show", "eth0", netns=Path(pods["a1"]["netns_path"]))
    assert "10.77.1.2/24" in addr
    assert "default via 10.77.1.1" in sh("ip", "route", netns=Path(pods["a1"]["netns_path"]))

    assert ping(pods["a1"]["netns_path"], pods["a2"]["ip"]), "pods on the same host cannot reach each other"
    assert not ping(pods["a1"]["netns_path"], pods["b1"]["ip"]), "cross-host traffic worked without routes"

    assert a.ctl("routes", desired={b.pod_cidr: b.address}) == {
        "add": [[b.pod_cidr, b.address]],
        "replace": [],
        "remove": [],
    }
    assert b.ctl("routes", desired={a.pod_cidr: a.address})["add"] == [[a.pod_cidr, a.address]]
    assert f"{b.pod_cidr} via {b.address} dev node0 proto 83" in sh("ip", "route", netns=a.netns)
    for src, dst in (("a1", "b1"), ("a2", "b2"), ("b1", "a2"), ("b2", "a1")):
        assert ping(pods[src]["netns_path"], pods[dst]["ip"]), f"{src} cannot reach {dst} across hosts"
    # a second sync changes nothing; an empty desired set removes only shoal's route
    assert a.ctl("routes", desired={b.pod_cidr: b.address}) == {"add": [], "replace": [], "remove": []}
    assert a.ctl("routes", desired={})["remove"] == [b.pod_cidr]
    assert "proto 83" not in sh("ip", "route", netns=a.netns)
    # a node that cannot be reached directly is reported, and does not keep the others from routing
    with pytest.raises(HostctlError, match=re.escape("10.1.0.0/24 via 203.0.113.9")):
        a.ctl("routes", desired={"10.1.0.0/24": "203.0.113.9", b.pod_cidr: b.address})
    assert f"{b.pod_cidr} via {b.address} dev node0 proto 83" in sh("ip", "route", netns=a.netns)
    assert a.ctl("routes", desired={})["remove"] == [b.pod_cidr]
    assert "198.18.77.0/24 dev node0" in sh("ip", "route", netns=a.netns)
    assert not ping(pods["a1"]["netns_path"], pods["b1"]["ip"])

    for h in (a, b):
        for i in (1, 2):
            h.ctl("teardown", uid=f"pod-{h.name}{i}")
        assert h.ipam_reservations() == [], f"host-local kept reservations on {h.name}"
        assert sorted(h.links()) == ["lo", "node0", "shoal0"], f"veths left on {h.name}: {h.links()}"
        assert list(h.pod_netns_dir.iterdir()) == []
        assert list((h.data / "net" / "sandboxes").iterdir()) == []
    assert not Path(pods["a1"]["netns_path"]).exists()


def test_setup_is_idempotent_and_recover_keeps_live_and_drops_gone_pods(lab: Lab) -> None:
    a = lab.host("a", "198.18.77.1", "10.77.1.0/24")
    a.ctl("conflist", cidr=a.pod_cidr)
    first = a.ctl("setup", uid="pod-1", name="one")
    assert a.ctl("setup", uid="pod-1", name="one") == first  # a restarted agent asking again
    a.ctl("setup", uid="pod-2", name="two")
    assert a.ipam_reservations() == ["10.77.1.2", "10.77.1.3"]

    kept = a.ctl("recover", live=["pod-1"])
    assert kept == [first]
    assert a.ipam_reservations() == ["10.77.1.2"], "the gone pod's address was not released"
    assert not (a.pod_netns_dir / "pod-2").exists()
    assert len([n for n in a.links() if n.startswith("veth")]) == 1, a.links()
    # the kept pod was not re-added: same namespace, same address, still one veth
    assert "10.77.1.2/24" in sh("ip", "-o", "addr", "show", "eth0", netns=a.pod_netns_dir / "pod-1")

    a.ctl("teardown", uid="pod-1")
    a.ctl("teardown", uid="pod-1")  # tearing down a missing sandbox is fine
    assert a.ipam_reservations() == []


def test_sandbox_whose_namespace_vanished_is_rebuilt_without_leaking(lab: Lab) -> None:
    """After a reboot /run is empty but host-local's leases on disk survive."""
    a = lab.host("a", "198.18.77.1", "10.77.1.0/24")
    a.ctl("conflist", cidr=a.pod_cidr)
    a.ctl("setup", uid="pod-1", name="one")
    sh("umount", str(a.pod_netns_dir / "pod-1"))
    (a.pod_netns_dir / "pod-1").unlink()
    again = a.ctl("setup", uid="pod-1", name="one")
    # the old lease was released (DEL with no namespace) before the new ADD; host-local hands
    # out the next address round-robin
    assert a.ipam_reservations() == [again["ip"]] == ["10.77.1.3"]
    assert ping(again["netns_path"], "10.77.1.1")
    a.ctl("teardown", uid="pod-1")
    assert a.ipam_reservations() == []


def test_failed_add_reports_the_plugin_error_and_leaves_nothing(lab: Lab) -> None:
    a = lab.host("a", "198.18.77.1", "10.77.1.0/24")
    bad = lab.base / "bad.conflist"
    bad.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "bad",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "shoal0",
                        "isGateway": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(a.data / "ipam"),
                            "ranges": [[{"subnet": "10.77.1.0/24"}]],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            }
        )
    )
    with pytest.raises(HostctlError) as err:
        a.ctl(
            "setup",
            uid="pod-1",
            name="one",
            conflist=str(bad),
            ports=[{"host_port": 70000, "container_port": 80}],
        )
    assert err.value.kind == "CniError"
    assert "CNI plugin 'portmap' ADD failed (code" in err.value.message
    assert "70000" in err.value.message
    assert list((a.data / "ipam" / "bad").glob("10.*")) == [], "failed ADD leaked its address"
    assert not (a.pod_netns_dir / "pod-1").exists()
    assert [n for n in a.links() if n.startswith("veth")] == []

    with pytest.raises(HostctlError) as err:
        a.ctl("setup", uid="pod-2", name="two", conflist=str(lab.base / "missing.conflist"))
    assert "missing.conflist: (file): cannot read it" in err.value.message


def test_host_port_and_bandwidth_limit(lab: Lab) -> None:
    a, b = two_hosts(lab)
    web = a.ctl(
        "setup",
        uid="pod-web",
        name="web",
        ports=[{"host_port": 8080, "container_port": 80}],
        bandwidth={
            "ingress_rate": 8_000_000,
            "ingress_burst": 800_000,
            "egress_rate": 8_000_000,
            "egress_burst": 800_000,
        },
    )
    www = lab.base / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the pod\n")
    lab.spawn(web["netns_path"], BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(www))
    # hostPort: another host reaches the pod through host a's address
    body = ""
    for _ in range(20):
        done = subprocess.run(
            [
                "nsenter",
                f"--net={b.netns}",
                "timeout",
                "3",
                BUSYBOX,
                "wget",
                "-qO-",
                f"http://{a.address}:8080/",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        body = done.stdout
        if body:
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert body == "hello from the pod\n"
    # the bandwidth plugin shaped the pod's host-side veth with a token bucket at 8 Mbit
    qdiscs = sh("tc", "qdisc", "show", netns=a.netns)
    assert "tbf" in qdiscs and "8Mbit" in qdiscs, qdiscs
    a.ctl("teardown", uid="pod-web")
    assert "CNI-DN" not in sh("iptables-save", "-t", "nat", netns=a.netns)
    assert [n for n in a.links() if n.startswith(("veth", "bwp"))] == []
    assert a.ipam_reservations() == []
