"""Node-to-node pod routes that also cross routers: host-gw where it can, a VXLAN overlay where it must.

Owns the pure planning (``split_routes``: which remote node is on a directly connected subnet and
gets a plain host-gw route, which is only reachable through a router and goes over VXLAN;
``plan_overlay``: the difference between what the kernel has and what is wanted) and
``OverlayRoutes``, which reads and changes the kernel with pyroute2 (imported lazily). The overlay
is flannel's vxlan backend without a side channel: one device ``shoal.vx`` (VNI 7777, UDP 8472,
``nolearning``) whose MAC is derived from the node's address, so every node knows every other
node's VTEP MAC; per remote node one permanent FDB entry (its MAC → its address), one permanent
neighbor entry (its address → its MAC) and a route ``podCIDR via <address> dev shoal.vx onlink``.
Only routes with shoal's protocol number and the device named ``shoal.vx`` (with what lives on it)
are ever changed or removed. It must not touch other interfaces, addresses or sysctls.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from shoal.net.routes import MAIN_TABLE, ROUTE_PROTOCOL, RouteError, RoutePlan, normalize_routes, plan_routes

__all__ = [
    "VXLAN_DEVICE",
    "VXLAN_PORT",
    "VXLAN_VNI",
    "Overlay",
    "OverlayPlan",
    "OverlayRoutes",
    "OverlayState",
    "VxlanDevice",
    "plan_overlay",
    "split_routes",
    "vtep_mac",
]

VXLAN_DEVICE = "shoal.vx"
VXLAN_VNI = 7777
VXLAN_PORT = 8472  # the Linux kernel's historical VXLAN port, as flannel uses
_OVERHEAD = {4: 50, 6: 70}  # outer IP + UDP + VXLAN + inner Ethernet
_NUD_PERMANENT = 0x80
_NUD_NOARP = 0x40
_NTF_SELF = 0x02
_RTNH_F_ONLINK = 4


class Overlay(StrEnum):
    AUTO = "auto"  # host-gw to nodes on a connected subnet, VXLAN to the others
    HOST_GW = "host-gw"
    VXLAN = "vxlan"


@dataclass(frozen=True, slots=True)
class VxlanDevice:
    name: str
    vni: int
    port: int
    local: str
    mac: str
    mtu: int
    up: bool = True


@dataclass(frozen=True, slots=True)
class OverlayState:
    """shoal's part of the kernel: host-gw routes, the VXLAN device and what is on it."""

    host_gw: Mapping[str, str]  # {cidr: gateway}, shoal's routes not on the device
    device: VxlanDevice | None = None
    vxlan_routes: Mapping[str, str] = field(default_factory=dict)  # {cidr: node address} on the device
    fdb: Mapping[str, str] = field(default_factory=dict)  # {mac: node address}
    neighbors: Mapping[str, str] = field(default_factory=dict)  # {node address: mac}


@dataclass(frozen=True, slots=True)
class OverlayPlan:
    host_gw: RoutePlan = field(default_factory=RoutePlan)
    vxlan_routes: RoutePlan = field(default_factory=RoutePlan)
    device: VxlanDevice | None = None  # the device wanted afterwards
    delete_device: bool = False  # also true when it is re-created (VNI, port or local address changed)
    create_device: bool = False
    update_device: bool = False  # MTU, MAC or link state
    fdb_add: tuple[tuple[str, str], ...] = ()
    fdb_remove: tuple[tuple[str, str], ...] = ()
    neighbors_add: tuple[tuple[str, str], ...] = ()
    neighbors_remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return (self.host_gw.empty and self.vxlan_routes.empty and not (
            self.delete_device or self.create_device or self.update_device or self.fdb_add or self.fdb_remove
            or self.neighbors_add or self.neighbors_remove))


def vtep_mac(address: str) -> str:
    """The VXLAN device MAC of the node at ``address``: locally administered ``0e:53`` + the IPv4
    address (or 4 bytes of a hash of an IPv6 address), so peers need not exchange MACs."""
    ip = ipaddress.ip_address(address)
    tail = ip.packed if ip.version == 4 else hashlib.sha256(ip.packed).digest()[:4]
    return ":".join(f"{b:02x}" for b in (0x0E, 0x53, *tail))


def split_routes(desired: Mapping[str, str], connected: Iterable[str], mode: Overlay) -> tuple[
        dict[str, str], dict[str, str]]:
    """``({cidr: gateway} for host-gw, {cidr: node address} for VXLAN)``; ``connected`` are this
    node's interface addresses with prefix (``198.18.1.2/24``), the VXLAN device's excluded."""
    want = normalize_routes(desired)
    if mode is Overlay.HOST_GW:
        return want, {}
    if mode is Overlay.VXLAN:
        return {}, want
    networks = [ipaddress.ip_interface(c).network for c in connected]
    host_gw: dict[str, str] = {}
    vxlan: dict[str, str] = {}
    for cidr, address in want.items():
        ip = ipaddress.ip_address(address)
        direct = any(ip in net and net.prefixlen < net.max_prefixlen for net in networks if net.version == ip.version)
        (host_gw if direct else vxlan)[cidr] = address
    return host_gw, vxlan


def _diff_pairs(current: Mapping[str, str], want: Mapping[str, str]) -> tuple[
        tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    add = tuple(sorted((k, v) for k, v in want.items() if current.get(k) != v))
    remove = tuple(sorted((k, v) for k, v in current.items() if want.get(k) != v))
    return add, remove


def plan_overlay(current: OverlayState, host_gw: Mapping[str, str], vxlan: Mapping[str, str],
                 device: VxlanDevice | None) -> OverlayPlan:
    """What to change so the kernel (``current``) carries ``host_gw`` routes and ``vxlan`` routes over
    ``device`` (``None`` when ``vxlan`` is empty: the device goes)."""
    wanted = device if vxlan else None
    have = current.device
    recreate = have is not None and wanted is not None and (have.vni, have.port, have.local) != (
        wanted.vni, wanted.port, wanted.local)
    delete = have is not None and (wanted is None or recreate)
    fresh = wanted is not None and (have is None or recreate)  # nothing on the device survives
    update = not fresh and wanted is not None and have is not None and replace(have, name=wanted.name) != wanted
    routes_now: Mapping[str, str] = {} if fresh else current.vxlan_routes
    fdb_now = {} if fresh or delete else dict(current.fdb)
    neighbors_now = {} if fresh or delete else dict(current.neighbors)
    fdb_want = {vtep_mac(a): a for a in vxlan.values()}
    neighbors_want = {a: vtep_mac(a) for a in vxlan.values()}
    fdb_add, fdb_remove = _diff_pairs(fdb_now, fdb_want)
    neighbors_add, neighbors_stale = _diff_pairs(neighbors_now, neighbors_want)
    return OverlayPlan(
        host_gw=plan_routes(current.host_gw, host_gw),
        vxlan_routes=plan_routes(routes_now, vxlan),
        device=wanted,
        delete_device=delete,
        create_device=fresh,
        update_device=update,
        fdb_add=fdb_add,
        fdb_remove=fdb_remove,
        neighbors_add=neighbors_add,
        neighbors_remove=tuple(a for a, _ in neighbors_stale if a not in neighbors_want),
    )


def _tolerate(exc: Exception, *codes: int) -> bool:
    return getattr(exc, "code", None) in codes


class OverlayRoutes:
    """shoal's node-to-node routes in the calling process's network namespace, per ``mode``.
    ``local_address`` is this node's InternalIP (the VXLAN source and MAC); empty: the address the
    kernel uses to reach the first remote node. Runs inside the agent's event loop."""

    def __init__(self, mode: Overlay = Overlay.AUTO, local_address: str = "", *, device: str = VXLAN_DEVICE,
                 vni: int = VXLAN_VNI, port: int = VXLAN_PORT, protocol: int = ROUTE_PROTOCOL,
                 table: int = MAIN_TABLE) -> None:
        self.mode = Overlay(mode)
        self.local_address = local_address
        self.device, self.vni, self.port = device, vni, port
        self.protocol, self.table = protocol, table

    async def _read(self, ipr: Any) -> tuple[OverlayState, list[str], dict[str, int], int | None]:
        """The current state, this node's connected addresses, ``{address: link mtu}`` and the device index."""
        found = await ipr.link_lookup(ifname=self.device)
        index = found[0] if found else None
        device = None
        fdb: dict[str, str] = {}
        neighbors: dict[str, str] = {}
        if index is not None:
            link = (await ipr.link("get", index=index))[0]
            info = link.get("linkinfo")
            data = info.get("data") if info is not None and info.get("kind") == "vxlan" else None
            device = VxlanDevice(self.device, int(data.get("vxlan_id")) if data else -1,
                                 int(data.get("vxlan_port")) if data else -1,
                                 str(data.get("vxlan_local") or "") if data else "", str(link.get("address")),
                                 int(link.get("mtu")), bool(link["flags"] & 1))
            async for entry in await ipr.fdb("dump", ifindex=index):
                if entry["ifindex"] == index and entry.get("dst"):
                    fdb[str(entry.get("lladdr"))] = str(entry.get("dst"))
            async for entry in await ipr.neigh("dump", ifindex=index):
                if entry["ifindex"] == index and entry["state"] & _NUD_PERMANENT and entry.get("lladdr"):
                    neighbors[str(entry.get("dst"))] = str(entry.get("lladdr"))
        host_gw: dict[str, str] = {}
        vxlan_routes: dict[str, str] = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            async for msg in await ipr.route("dump", family=family, table=self.table):
                if msg["proto"] == self.protocol and msg.get("dst") is not None:
                    on_device = index is not None and msg.get("oif") == index
                    (vxlan_routes if on_device else host_gw)[f"{msg.get('dst')}/{msg['dst_len']}"] = str(
                        msg.get("gateway") or "")
        mtus = {}
        async for link in await ipr.link("dump"):
            mtus[link["index"]] = int(link.get("mtu"))
        connected: list[str] = []
        address_mtu: dict[str, int] = {}
        async for addr in await ipr.addr("dump"):
            if addr["index"] != index and addr.get("address"):
                connected.append(f"{addr.get('address')}/{addr['prefixlen']}")
                address_mtu[str(addr.get("address"))] = mtus.get(addr["index"], 1500)
        state = OverlayState(host_gw, device, vxlan_routes, fdb, neighbors)
        return state, connected, address_mtu, index

    async def _local(self, ipr: Any, vxlan: Mapping[str, str]) -> str:
        if self.local_address:
            return self.local_address
        first = sorted(vxlan.values())[0]
        for msg in await ipr.route("get", dst=first):
            if msg.get("prefsrc"):
                return str(msg.get("prefsrc"))
        raise RouteError(f"no local address reaches node {first}; pass the node's address (--overlay needs it)")

    async def sync(self, desired: Mapping[str, str]) -> OverlayPlan:
        """Make shoal's routes carry ``desired`` (``{pod_cidr: node_address}``); returns what changed."""
        from pyroute2 import AsyncIPRoute  # lazy: keeps agent RSS low
        from pyroute2.netlink.exceptions import NetlinkError

        async with AsyncIPRoute() as ipr:
            state, connected, address_mtu, _ = await self._read(ipr)
            host_gw, vxlan = split_routes(desired, connected, self.mode)
            failures: list[str] = []
            device = None
            if vxlan:
                local = await self._local(ipr, vxlan)
                if local not in address_mtu:
                    raise RouteError(f"the node address {local} is on no interface of this node; VXLAN needs the "
                                     "node's own InternalIP as its source")
                family = ipaddress.ip_address(local).version
                for cidr, address in list(vxlan.items()):
                    if ipaddress.ip_address(address).version != family:
                        failures.append(f"cannot route {cidr} over VXLAN to {address}: the local address {local} "
                                        f"is IPv{family}")
                        del vxlan[cidr]
                device = VxlanDevice(self.device, self.vni, self.port, local, vtep_mac(local),
                                     address_mtu[local] - _OVERHEAD[family])
            plan = plan_overlay(state, host_gw, vxlan, device)
            try:
                await self._apply(ipr, plan, failures)
            except NetlinkError as exc:
                raise RouteError(f"VXLAN device {self.device}: {exc.args[-1]}") from exc
            if failures:
                raise RouteError("; ".join(failures))
        return plan

    async def _apply(self, ipr: Any, plan: OverlayPlan, failures: list[str]) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        for cidr in (*plan.host_gw.remove, *plan.vxlan_routes.remove):
            try:
                await ipr.route("del", dst=cidr, proto=self.protocol, table=self.table)
            except NetlinkError as exc:
                if not _tolerate(exc, errno.ESRCH):
                    raise RouteError(f"cannot remove the route to {cidr}: {exc.args[-1]}") from exc
        if plan.delete_device:
            try:
                await ipr.link("del", ifname=self.device)
            except NetlinkError as exc:
                if not _tolerate(exc, errno.ENODEV):
                    raise
        index = None
        if plan.device is not None:
            dev = plan.device
            if plan.create_device:
                await ipr.link("add", ifname=dev.name, kind="vxlan", vxlan_id=dev.vni, vxlan_local=dev.local,
                               vxlan_port=dev.port, vxlan_learning=0, address=dev.mac, mtu=dev.mtu)
            index = (await ipr.link_lookup(ifname=dev.name))[0]
            if plan.create_device or plan.update_device:
                await ipr.link("set", index=index, address=dev.mac, mtu=dev.mtu, state="up")
            for mac, address in plan.fdb_remove:
                try:
                    await ipr.fdb("del", ifindex=index, lladdr=mac, dst=address)
                except NetlinkError as exc:
                    if not _tolerate(exc, errno.ENOENT):
                        raise
            for address in plan.neighbors_remove:
                try:
                    await ipr.neigh("del", dst=address, ifindex=index)
                except NetlinkError as exc:
                    if not _tolerate(exc, errno.ENOENT):
                        raise
            for mac, address in plan.fdb_add:
                await ipr.fdb("replace", ifindex=index, lladdr=mac, dst=address, state=_NUD_PERMANENT | _NUD_NOARP,
                              flags=_NTF_SELF)
            for address, mac in plan.neighbors_add:
                await ipr.neigh("replace", dst=address, lladdr=mac, ifindex=index, state=_NUD_PERMANENT)
        routes: list[tuple[str, str, str, dict[str, Any]]] = [
            *((verb, c, g, {}) for verb, entries in (("add", plan.host_gw.add), ("replace", plan.host_gw.replace))
              for c, g in entries),
            *((verb, c, g, {"oif": index, "flags": _RTNH_F_ONLINK})
              for verb, entries in (("add", plan.vxlan_routes.add), ("replace", plan.vxlan_routes.replace))
              for c, g in entries)]
        for verb, cidr, gateway, extra in routes:
            try:
                await ipr.route("replace", dst=cidr, gateway=gateway, proto=self.protocol, table=self.table, **extra)
            except NetlinkError as exc:  # apply the others: one unreachable node must not cut off the rest
                how = "over VXLAN" if extra else "(host-gw needs a node address on a directly connected network)"
                failures.append(f"cannot {verb} the route to {cidr} via {gateway} {how}: {exc.args[-1]}")

    async def flush(self) -> OverlayPlan:
        """Remove every route shoal installed and the VXLAN device (agent uninstall)."""
        return await self.sync({})
