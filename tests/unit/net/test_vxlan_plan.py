"""Overlay planning: nodes on a connected subnet get host-gw routes, routed nodes go over VXLAN, and the
plan removes what is no longer wanted and is empty once applied."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.net.routes import RouteError, RoutePlan
from shoal.net.vxlan import (
    VXLAN_DEVICE,
    Overlay,
    OverlayPlan,
    OverlayState,
    VxlanDevice,
    plan_overlay,
    split_routes,
    vtep_mac,
)

CONNECTED = ["198.18.1.2/24", "127.0.0.1/8", "10.77.1.1/24", "198.18.9.9/32"]
DESIRED = {"10.77.2.0/24": "198.18.1.3", "10.77.3.0/24": "198.18.2.2", "10.77.4.0/24": "198.18.9.10"}


def device(local: str = "198.18.1.2", mtu: int = 1450) -> VxlanDevice:
    return VxlanDevice(VXLAN_DEVICE, 7777, 8472, local, vtep_mac(local), mtu)


def applied(state: OverlayState, plan: OverlayPlan) -> OverlayState:
    """The kernel after ``plan`` (as OverlayRoutes applies it)."""
    host_gw = {c: g for c, g in state.host_gw.items() if c not in plan.host_gw.remove}
    host_gw |= dict(plan.host_gw.add) | dict(plan.host_gw.replace)
    if plan.device is None:
        return OverlayState(host_gw)
    keep = not plan.create_device
    routes = {c: g for c, g in state.vxlan_routes.items() if keep and c not in plan.vxlan_routes.remove}
    fdb = {m: a for m, a in state.fdb.items() if keep and (m, a) not in plan.fdb_remove}
    neighbors = {a: m for a, m in state.neighbors.items() if keep and a not in plan.neighbors_remove}
    routes |= dict(plan.vxlan_routes.add) | dict(plan.vxlan_routes.replace)
    return OverlayState(host_gw, plan.device, routes, fdb | dict(plan.fdb_add), neighbors | dict(plan.neighbors_add))


def test_same_subnet_is_host_gw_and_routed_nodes_go_over_vxlan() -> None:
    host_gw, vxlan = split_routes(DESIRED, CONNECTED, Overlay.AUTO)
    assert host_gw == {"10.77.2.0/24": "198.18.1.3"}
    assert vxlan == {"10.77.3.0/24": "198.18.2.2", "10.77.4.0/24": "198.18.9.10"}  # a /32 is no subnet
    assert split_routes(DESIRED, CONNECTED, Overlay.HOST_GW) == (DESIRED, {})
    assert split_routes(DESIRED, CONNECTED, Overlay.VXLAN) == ({}, DESIRED)


def test_the_first_sync_creates_the_device_fdb_neighbors_and_routes() -> None:
    host_gw, vxlan = split_routes(DESIRED, CONNECTED, Overlay.AUTO)
    plan = plan_overlay(OverlayState({}), host_gw, vxlan, device())
    assert plan.create_device and not plan.delete_device
    assert plan.host_gw == RoutePlan(add=(("10.77.2.0/24", "198.18.1.3"),))
    assert plan.vxlan_routes.add == (("10.77.3.0/24", "198.18.2.2"), ("10.77.4.0/24", "198.18.9.10"))
    assert plan.fdb_add == (("0e:53:c6:12:02:02", "198.18.2.2"), ("0e:53:c6:12:09:0a", "198.18.9.10"))
    assert plan.neighbors_add == (("198.18.2.2", "0e:53:c6:12:02:02"), ("198.18.9.10", "0e:53:c6:12:09:0a"))
    after = applied(OverlayState({}), plan)
    assert plan_overlay(after, host_gw, vxlan, device()).empty  # idempotent


def test_a_removed_node_loses_its_fdb_entry_neighbor_and_route_and_the_last_one_the_device() -> None:
    host_gw, vxlan = split_routes(DESIRED, CONNECTED, Overlay.AUTO)
    state = applied(OverlayState({}), plan_overlay(OverlayState({}), host_gw, vxlan, device()))
    fewer = dict(vxlan)
    del fewer["10.77.4.0/24"]
    plan = plan_overlay(state, host_gw, fewer, device())
    assert not (plan.create_device or plan.delete_device or plan.update_device)
    assert plan.vxlan_routes == RoutePlan(remove=("10.77.4.0/24",))
    assert plan.fdb_remove == (("0e:53:c6:12:09:0a", "198.18.9.10"),)
    assert plan.neighbors_remove == ("198.18.9.10",)
    gone = plan_overlay(applied(state, plan), {}, {}, device())
    assert gone.delete_device and gone.device is None
    assert gone.host_gw.remove == ("10.77.2.0/24",) and gone.vxlan_routes.remove == ("10.77.3.0/24",)
    assert applied(state, gone) == OverlayState({})


def test_a_changed_local_address_recreates_the_device_and_mtu_is_updated_in_place() -> None:
    state = applied(OverlayState({}), plan_overlay(OverlayState({}), {}, {"10.77.3.0/24": "198.18.2.2"}, device()))
    moved = plan_overlay(state, {}, {"10.77.3.0/24": "198.18.2.2"}, device("198.18.1.7"))
    assert moved.delete_device and moved.create_device
    assert moved.vxlan_routes.add == (("10.77.3.0/24", "198.18.2.2"),) and moved.fdb_add
    smaller = plan_overlay(state, {}, {"10.77.3.0/24": "198.18.2.2"}, device(mtu=1400))
    assert smaller.update_device and not smaller.create_device and not smaller.fdb_add


def test_bad_input_names_the_entry() -> None:
    with pytest.raises(RouteError, match="gateway 'node-b' is not an IP address"):
        split_routes({"10.77.2.0/24": "node-b"}, CONNECTED, Overlay.AUTO)
    with pytest.raises(ValueError, match="'gre' is not a valid Overlay"):
        Overlay("gre")


nets = st.integers(0, 255).map(lambda i: f"10.77.{i}.0/24")
nodes = st.sampled_from(["198.18.1.3", "198.18.1.4", "198.18.2.2", "198.18.3.2", "198.18.3.3"])


@given(st.dictionaries(nets, nodes, max_size=8), st.dictionaries(nets, nodes, max_size=8))
def test_any_sequence_of_syncs_converges(first: dict[str, str], second: dict[str, str]) -> None:
    state = OverlayState({})
    for desired in (first, second):
        host_gw, vxlan = split_routes(desired, CONNECTED, Overlay.AUTO)
        state = applied(state, plan_overlay(state, host_gw, vxlan, device()))
        assert dict(state.host_gw) | dict(state.vxlan_routes) == desired
        assert (state.device is not None) == bool(vxlan)
        assert dict(state.fdb) == {vtep_mac(a): a for a in vxlan.values()}
        assert plan_overlay(state, host_gw, vxlan, device()).empty


def test_the_agent_takes_an_overlay_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from shoal.agent.run import parser

    assert parser().parse_args([]).overlay == "auto"
    assert Overlay(parser().parse_args(["--overlay", "vxlan"]).overlay) is Overlay.VXLAN
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["--overlay", "gre"])
    assert exit_.value.code == 2
    assert "--overlay: invalid choice: 'gre'" in capsys.readouterr().err
