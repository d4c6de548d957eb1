"""The default conflist shoal writes, and that a user's own file is never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.net import ConflistError, load_conflist, render_conflist, write_conflist
from shoal.net.cni import parse_conflist


def test_default_chain_is_bridge_portmap_bandwidth_loopback_over_the_pod_cidr(tmp_path: Path) -> None:
    doc = render_conflist("10.77.3.0/24", tmp_path / "ipam")
    assert [p["type"] for p in doc["plugins"]] == ["bridge", "portmap", "bandwidth", "loopback"]
    bridge = doc["plugins"][0]
    assert bridge["bridge"] == "shoal0" and bridge["isGateway"] is True and bridge["ipMasq"] is False
    assert bridge["ipam"] == {
        "type": "host-local",
        "dataDir": str(tmp_path / "ipam"),
        "ranges": [[{"subnet": "10.77.3.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    assert doc["plugins"][1]["capabilities"] == {"portMappings": True}
    assert doc["plugins"][2]["capabilities"] == {"bandwidth": True}
    assert render_conflist("fd00:77::/64", tmp_path)["plugins"][0]["ipam"]["routes"] == [{"dst": "::/0"}]
    assert render_conflist("10.77.3.0/24", tmp_path, ip_masq=True, mtu=1400)["plugins"][0]["mtu"] == 1400


@pytest.mark.parametrize(
    ("cidr", "needle"),
    [("10.77.3.1/24", "10.77.3.1/24"), ("banana", "banana"), ("10.77.3.0/31", "/30 or larger")],
)
def test_bad_pod_cidr_names_the_field(tmp_path: Path, cidr: str, needle: str) -> None:
    with pytest.raises(ConflistError) as err:
        render_conflist(cidr, tmp_path)
    assert "spec.podCIDR" in str(err.value) and needle in str(err.value)


def test_write_rewrites_its_own_file_but_never_a_users(tmp_path: Path) -> None:
    path = tmp_path / "net" / "shoal.conflist"
    assert write_conflist(path, "10.77.1.0/24", tmp_path / "ipam") is True
    assert load_conflist(path).plugins[0]["ipam"]["ranges"] == [[{"subnet": "10.77.1.0/24"}]]
    assert write_conflist(path, "10.77.2.0/24", tmp_path / "ipam") is True  # new podCIDR from the server
    assert load_conflist(path).plugins[0]["ipam"]["ranges"] == [[{"subnet": "10.77.2.0/24"}]]
    mine = {"cniVersion": "1.0.0", "name": "mine", "plugins": [{"type": "ptp"}]}
    path.write_text(json.dumps(mine))
    assert write_conflist(path, "10.77.3.0/24", tmp_path / "ipam") is False
    assert json.loads(path.read_text()) == mine


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"name": "x", "plugins": [{"type": "bridge"}]}', "cniVersion: is required"),
        ('{"name": "x", "cniVersion": "1.0.0", "plugins": []}', "plugins: must be a non-empty list"),
        ('{"name": "x", "cniVersion": "1.0.0", "plugins": [{"ipam": {}}]}', "plugins[0].type"),
        ('{"name": "x", "cniVersion": "1.0.0", "plugins": [{"type": "../bin/sh"}]}', "plain binary name"),
    ],
)
def test_bad_conflist_errors_name_file_and_field(text: str, needle: str) -> None:
    with pytest.raises(ConflistError) as err:
        parse_conflist(text, "/etc/shoal/net.conflist")
    assert str(err.value).startswith("/etc/shoal/net.conflist: ") and needle in str(err.value)
