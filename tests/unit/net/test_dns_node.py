"""The agent's side of cluster DNS without sockets: a pod's resolv.conf, the gateway address it names,
the host's upstream resolvers, and the zone ``NodeDns`` builds from the mirrors' dicts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.dns import (
    HostResolvers,
    NodeDns,
    gateway_address,
    pod_resolv_conf,
    resolv_conf_mount,
    write_pod_resolv_conf,
)
from shoal.net.dnszone import lookup


def service(name: str, cluster_ip: str, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}]}}


def endpoints(name: str, ips: list[str], ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 8080}]}]}


def test_pod_resolv_conf_names_the_gateway_the_namespace_search_path_and_ndots() -> None:
    assert pod_resolv_conf("shop", "10.77.3.1") == ("nameserver 10.77.3.1\n"
                                                    "search shop.svc.shoal svc.shoal shoal\n"
                                                    "options ndots:5\n")
    assert pod_resolv_conf("", "10.77.3.1", "cluster.local").splitlines()[1] == \
        "search default.svc.cluster.local svc.cluster.local cluster.local"


def test_the_gateway_is_the_first_address_of_the_pod_cidr() -> None:
    assert gateway_address("10.77.3.0/24") == "10.77.3.1"
    with pytest.raises(ValueError, match=r"podCIDR .banana. is not a network like 10\.77\.3\.0/24"):
        gateway_address("banana")


def test_the_resolv_conf_file_is_written_once_and_mounted_read_only(tmp_path: Path) -> None:
    path = write_pod_resolv_conf(tmp_path / "pod-uid", "shop", "10.77.3.1")
    assert path == tmp_path / "pod-uid" / "resolv.conf"
    assert path.read_text().startswith("nameserver 10.77.3.1\nsearch shop.svc.shoal ")
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    assert write_pod_resolv_conf(tmp_path / "pod-uid", "shop", "10.77.3.1").stat().st_mtime_ns == stamp - 10**9
    mount = resolv_conf_mount(path)
    assert (mount.destination, mount.source, mount.read_only) == ("/etc/resolv.conf", str(path), True)
    assert "ro" in mount.options and sorted(p.name for p in path.parent.iterdir()) == ["resolv.conf"]


def test_host_resolvers_come_from_nameserver_lines_and_follow_edits(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch lan\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver junk\n"
                    "options edns0\n")
    resolvers = HostResolvers(conf)
    assert resolvers() == [("192.0.2.53", 53), ("fe80::1", 53)]
    conf.write_text("nameserver 127.0.0.53\n")
    resolvers._checked = -10.0  # as if the re-read interval had passed
    assert resolvers() == [("127.0.0.53", 53)]
    conf.unlink()
    resolvers._checked = -10.0
    assert resolvers() == []


def test_node_dns_builds_the_zone_from_the_mirrored_dicts_and_skips_bad_objects() -> None:
    services = {("default", "web"): service("web", "10.96.0.10"), ("default", "bad"): {"kind": "Service",
                                                                                       "spec": {"nope": 1}}}
    eps = {("default", "web"): endpoints("web", ["10.77.3.5"])}
    node = NodeDns(services, eps, port=0)
    assert node.nameserver == "" and node.serving is None
    with pytest.raises(ValueError, match=r"spec\.podCIDR is not assigned"):
        node.write_resolv_conf(Path("/nonexistent"), "default")
    node.set_pod_cidr("10.77.3.0/24")
    assert node.nameserver == "10.77.3.1"
    zone = node.rebuild()
    assert [r.value for r in lookup(zone, "web.default.svc.shoal", "A").answers] == ["10.96.0.10"]  # type: ignore
    unknown = lookup(zone, "9.3.77.10.in-addr.arpa", "PTR")  # inside this node's podCIDR
    assert unknown is not None and unknown.rcode == "NXDOMAIN"
    services[("default", "api")] = service("api", "10.96.0.11")
    node.changed()
    assert node.zone() is zone  # not rebuilt until the loop runs
    assert [r.value for r in lookup(node.rebuild(), "api.default.svc.shoal", "A").answers] == ["10.96.0.11"]  # type: ignore


def test_a_fixed_listen_address_wins_over_the_gateway() -> None:
    node = NodeDns({}, {}, listen="127.0.0.53", domain="Cluster.Local.")
    node.set_pod_cidr("10.77.3.0/24")
    assert node.nameserver == "127.0.0.53"
    assert node.resolv_conf("a").splitlines()[:2] == ["nameserver 127.0.0.53",
                                                      "search a.svc.cluster.local svc.cluster.local cluster.local"]


def test_a_malformed_pod_cidr_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    node = NodeDns({}, {})
    node.set_pod_cidr("10.77.3.0/24")
    node.set_pod_cidr("banana")
    assert node.nameserver == "10.77.3.1"
    assert "spec.podCIDR 'banana' is not a network like 10.77.3.0/24; not serving on it" in caplog.text


def test_the_pod_mount_writes_the_file_under_the_pod_dir(tmp_path: Path) -> None:
    node = NodeDns({}, {})
    node.set_pod_cidr("10.77.3.0/24")
    mount = node.pod_mount(tmp_path / "uid-1", "shop")
    assert (mount.destination, mount.source) == ("/etc/resolv.conf", str(tmp_path / "uid-1" / "resolv.conf"))
    assert (tmp_path / "uid-1" / "resolv.conf").read_text() == pod_resolv_conf("shop", "10.77.3.1")
