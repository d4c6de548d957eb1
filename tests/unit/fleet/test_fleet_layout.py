"""A fleet's layout: names that fit the kernel's limits, addresses on a free /24, a round trip
through fleet.json, and clear errors for names and sizes that cannot be laid out."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from shoal.fleet.layout import FleetLayout, LayoutError, fleet_layout, free_subnet


def test_nodes_get_their_own_namespace_address_dirs_and_cgroup(tmp_path: Path) -> None:
    fleet = fleet_layout("dev", 3, tmp_path, ipaddress.IPv4Network("172.31.4.0/24"), 7443)
    assert fleet.server_url == "https://172.31.4.1:7443"
    assert [n.name for n in fleet.nodes] == ["dev-1", "dev-2", "dev-3"]
    assert [n.address for n in fleet.nodes] == ["172.31.4.11", "172.31.4.12", "172.31.4.13"]
    assert [n.netns for n in fleet.nodes] == ["shoal-dev-1", "shoal-dev-2", "shoal-dev-3"]
    assert len({n.cgroup_parent for n in fleet.nodes}) == len({n.runc_root for n in fleet.nodes}) == 3
    assert all(n.data_dir.startswith(str(tmp_path / "dev")) for n in fleet.nodes)
    assert all(len(name) <= 15 for name in [fleet.bridge, *(n.veth for n in fleet.nodes)])  # IFNAMSIZ


def test_two_fleets_get_different_link_names(tmp_path: Path) -> None:
    net = ipaddress.IPv4Network("172.31.0.0/24")
    a, b = fleet_layout("a", 1, tmp_path, net, 1), fleet_layout("b", 1, tmp_path, net, 1)
    assert a.bridge != b.bridge and a.nodes[0].veth != b.nodes[0].veth


def test_the_layout_round_trips_through_fleet_json(tmp_path: Path) -> None:
    fleet = fleet_layout("dev", 2, tmp_path, ipaddress.IPv4Network("172.31.9.0/24"), 6000)
    Path(fleet.state_dir).mkdir(parents=True)
    fleet.save()
    assert FleetLayout.load(Path(fleet.state_dir)) == fleet


def test_the_subnet_avoids_every_network_in_use() -> None:
    used = ["127.0.0.1/8", "172.31.0.1/24", "172.31.1.0/24", "10.0.0.0/8", "0.0.0.0/0"]
    assert free_subnet(used) == ipaddress.IPv4Network("172.31.2.0/24")
    with pytest.raises(LayoutError, match="no free"):
        free_subnet(["172.16.0.0/12"])


@pytest.mark.parametrize(("name", "nodes", "wanted"), [
    ("Dev", 1, "--name"), ("-x", 1, "--name"), ("a" * 21, 1, "--name"), ("dev", 0, "--nodes"), ("dev", 51, "--nodes"),
])
def test_bad_names_and_sizes_are_refused_naming_the_option(tmp_path: Path, name: str, nodes: int, wanted: str) -> None:
    with pytest.raises(LayoutError, match=wanted):
        fleet_layout(name, nodes, tmp_path, ipaddress.IPv4Network("172.31.0.0/24"), 1)
