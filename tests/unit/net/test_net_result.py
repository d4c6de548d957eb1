"""Parsing CNI results of every spec version into the pod's address and gateway."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.net import ResultError, parse_result

BRIDGE_1_0 = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "shoal0", "mac": "aa:aa:aa:aa:aa:aa"},
        {"name": "veth1234", "mac": "bb:bb:bb:bb:bb:bb"},
        {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/shoal/netns/p"},
    ],
    "ips": [{"interface": 2, "address": "10.77.1.5/24", "gateway": "10.77.1.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}


def test_bridge_result_gives_the_address_on_the_pod_interface() -> None:
    ip = parse_result(BRIDGE_1_0).pod_ip("eth0")
    assert (str(ip.address), str(ip.gateway)) == ("10.77.1.5/24", "10.77.1.1")


def test_ipv4_is_preferred_and_host_side_addresses_are_ignored() -> None:
    raw: dict[str, Any] = dict(
        BRIDGE_1_0,
        ips=[
            {"interface": 0, "address": "10.77.1.1/24"},
            {"interface": 2, "address": "fd00:77::5/64", "gateway": "fd00:77::1"},
            {"interface": 2, "address": "10.77.1.9/24", "gateway": "10.77.1.1"},
        ],
    )
    assert str(parse_result(raw).pod_ip("eth0").address) == "10.77.1.9/24"
    assert str(parse_result(dict(raw, ips=raw["ips"][:2])).pod_ip("eth0").address) == "fd00:77::5/64"


def test_0_4_result_without_interface_index_and_0_2_result() -> None:
    old = {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.77.2.3/24", "gateway": "10.77.2.1"}],
    }
    assert str(parse_result(old).pod_ip("eth0").address.ip) == "10.77.2.3"
    ancient = {"cniVersion": "0.2.0", "ip4": {"ip": "10.77.2.4/24", "gateway": "10.77.2.1"}}
    ip = parse_result(ancient).pod_ip("eth0")
    assert (str(ip.address.ip), str(ip.gateway), ip.address.network.prefixlen) == (
        "10.77.2.4",
        "10.77.2.1",
        24,
    )


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ([], "must be a JSON object"),
        (
            {"cniVersion": "1.0.0", "ips": [{"address": "10.77.1.5"}, {"address": "nope/24"}]},
            "ips[1].address",
        ),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.77.1.5/24", "gateway": "x"}]}, "ips[0].gateway"),
        (
            {"cniVersion": "1.0.0", "ips": [{"address": "10.77.1.5/24", "interface": "eth0"}]},
            "ips[0].interface",
        ),
        ({"cniVersion": "1.0.0", "interfaces": [{"mac": "x"}]}, "interfaces[0]: needs a name"),
    ],
)
def test_malformed_results_name_the_field(raw: Any, needle: str) -> None:
    with pytest.raises(ResultError) as err:
        parse_result(raw)
    assert needle in str(err.value)


def test_result_without_a_pod_address_says_to_check_ipam() -> None:
    with pytest.raises(ResultError) as err:
        parse_result(dict(BRIDGE_1_0, ips=[{"interface": 0, "address": "10.77.1.1/24"}])).pod_ip("eth0")
    assert "no address on the pod interface 'eth0'" in str(err.value) and "IPAM" in str(err.value)
