"""The fleet's wiring on this machine: one bridge with the server's address, and per node a named
network namespace joined to it by a veth pair (the node's "host" with its own address and a
default route through the bridge).

Uses pyroute2 (netlink). This machine keeps ``ip_forward`` as it is, so nothing from inside the
fleet is routed out of the machine. ``teardown`` removes exactly what ``wire``/``add_node`` made
and tolerates parts already gone. It must not start processes.
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path

from shoal.fleet.layout import FleetLayout, NodeLayout

__all__ = ["add_node", "host_networks", "netns_exists", "remove_node", "teardown", "wire_bridge"]

NETNS_DIR = Path("/run/netns")


def host_networks() -> list[str]:
    """Every address prefix and route destination on this machine (for picking a free subnet)."""
    from pyroute2 import IPRoute

    found: list[str] = []
    with IPRoute() as ipr:
        for addr in ipr.get_addr(family=2):
            found.append(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
        for route in ipr.get_routes(family=2):
            dst = route.get_attr("RTA_DST")
            if dst:
                found.append(f"{dst}/{route['dst_len']}")
    return found


def wire_bridge(fleet: FleetLayout) -> None:
    """The fleet's bridge with the server's address, up (idempotent)."""
    from pyroute2 import IPRoute

    prefix = ipaddress.ip_network(fleet.subnet).prefixlen
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=fleet.bridge):
            ipr.link("add", ifname=fleet.bridge, kind="bridge")
        index = ipr.link_lookup(ifname=fleet.bridge)[0]
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if fleet.server_address not in have:
            ipr.addr("add", index=index, address=fleet.server_address, prefixlen=prefix)
        ipr.link("set", index=index, state="up")


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add_node(fleet: FleetLayout, node: NodeLayout) -> None:
    """The node's namespace, its veth on the bridge and its address (idempotent)."""
    from pyroute2 import IPRoute, NetNS, netns

    if not netns_exists(node.netns):
        netns.create(node.netns)
    prefix = ipaddress.ip_network(fleet.subnet).prefixlen
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=node.veth):
            ipr.link("add", ifname=node.veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": node.netns})
        bridge = ipr.link_lookup(ifname=fleet.bridge)[0]
        ipr.link("set", index=ipr.link_lookup(ifname=node.veth)[0], master=bridge, state="up")
    with NetNS(node.netns) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        eth0 = ns.link_lookup(ifname="eth0")[0]
        if node.address not in {a.get_attr("IFA_ADDRESS") for a in ns.get_addr(index=eth0, family=2)}:
            ns.addr("add", index=eth0, address=node.address, prefixlen=prefix)
        ns.link("set", index=eth0, state="up")
        if not any(r["dst_len"] == 0 for r in ns.get_routes(family=2, table=254)):
            ns.route("add", dst="0.0.0.0/0", gateway=fleet.server_address)


def remove_node(node: NodeLayout) -> bool:
    """Delete the node's namespace (its veth pair and everything in it go too); False if absent."""
    from pyroute2 import IPRoute, netns

    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=node.veth):
            with contextlib.suppress(Exception):
                ipr.link("del", index=index)
    if not netns_exists(node.netns):
        return False
    netns.remove(node.netns)
    return True


def teardown(fleet: FleetLayout) -> list[str]:
    """Remove every node namespace and the bridge; returns what was removed."""
    from pyroute2 import IPRoute

    removed = [f"network namespace {n.netns}" for n in fleet.nodes if remove_node(n)]
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=fleet.bridge):
            ipr.link("del", index=index)
            removed.append(f"bridge {fleet.bridge}")
    return removed
