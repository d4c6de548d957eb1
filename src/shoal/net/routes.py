"""Host-gw routes: each other node's pod CIDR via that node's address, kept with netlink.

Owns ``plan_routes`` (pure: the difference between shoal's current routes and the desired
``{pod_cidr: node_address}``) and ``HostRoutes``, which applies it with pyroute2 (imported
lazily). Every route shoal installs carries the routing protocol number ``ROUTE_PROTOCOL``
(shown as ``proto 83`` by ``ip route``), and only routes with that number are ever changed or
removed, so the node's own and other daemons' routes are never touched. It must not create
interfaces or namespaces; nodes behind a router are reached over VXLAN by ``shoal.net.vxlan``,
which builds on ``plan_routes``.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shoal.net.protocol import NetworkError

__all__ = [
    "MAIN_TABLE",
    "ROUTE_PROTOCOL",
    "HostRoutes",
    "RouteError",
    "RoutePlan",
    "normalize_routes",
    "plan_routes",
]

ROUTE_PROTOCOL = 83  # unassigned in /etc/iproute2/rt_protos; marks "installed by shoal"
MAIN_TABLE = 254


class RouteError(NetworkError):
    pass


@dataclass(frozen=True, slots=True)
class RoutePlan:
    add: tuple[tuple[str, str], ...] = ()
    replace: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.replace or self.remove)


def normalize_routes(desired: Mapping[str, str]) -> dict[str, str]:
    """Validate ``{cidr: gateway}``; the error names the bad entry and the expected shape."""
    out: dict[str, str] = {}
    for cidr, gateway in desired.items():
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise RouteError(f"pod CIDR {cidr!r}: not a network like 10.77.2.0/24 ({exc})") from exc
        try:
            via = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise RouteError(
                f"pod CIDR {cidr}: gateway {gateway!r} is not an IP address; give the node's InternalIP"
            ) from exc
        if via.version != network.version:
            raise RouteError(
                f"pod CIDR {cidr}: gateway {gateway} is IPv{via.version} but the CIDR is IPv{network.version}"
            )
        if str(network) in out:
            raise RouteError(f"pod CIDR {cidr} is listed twice")
        out[str(network)] = str(via)
    return out


def plan_routes(current: Mapping[str, str], desired: Mapping[str, str]) -> RoutePlan:
    """What to change so shoal's routes (``current``) become ``desired``; both ``{cidr: gateway}``."""
    want = normalize_routes(desired)
    add = tuple(sorted((c, g) for c, g in want.items() if c not in current))
    replace = tuple(sorted((c, g) for c, g in want.items() if c in current and current[c] != g))
    remove = tuple(sorted(c for c in current if c not in want))
    return RoutePlan(add, replace, remove)


class HostRoutes:
    """shoal's routes in the calling process's network namespace (table ``table``). Uses
    pyroute2's asyncio netlink socket, so it runs inside the agent's event loop."""

    def __init__(self, protocol: int = ROUTE_PROTOCOL, table: int = MAIN_TABLE) -> None:
        self.protocol = protocol
        self.table = table

    def _ipr(self) -> Any:
        from pyroute2 import AsyncIPRoute  # lazy: keeps agent RSS low

        return AsyncIPRoute()

    async def _current(self, ipr: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            async for msg in await ipr.route("dump", family=family, table=self.table):
                if msg["proto"] == self.protocol and msg.get("dst") is not None:
                    out[f"{msg.get('dst')}/{msg['dst_len']}"] = str(msg.get("gateway") or "")
        return out

    async def current(self) -> dict[str, str]:
        """shoal's routes now: ``{cidr: gateway}`` of routes with shoal's protocol number."""
        async with self._ipr() as ipr:
            return await self._current(ipr)

    async def sync(self, desired: Mapping[str, str]) -> RoutePlan:
        """Make shoal's routes equal ``desired`` (``{pod_cidr: node_address}``); returns what changed."""
        from pyroute2.netlink.exceptions import NetlinkError

        async with self._ipr() as ipr:
            plan = plan_routes(await self._current(ipr), desired)
            for cidr in plan.remove:
                try:
                    await ipr.route("del", dst=cidr, proto=self.protocol, table=self.table)
                except NetlinkError as exc:
                    if exc.code != errno.ESRCH:  # already gone
                        raise RouteError(f"cannot remove the route to {cidr}: {exc.args[-1]}") from exc
            failures = []
            for verb, entries in (("add", plan.add), ("replace", plan.replace)):
                for cidr, gateway in entries:
                    try:
                        await ipr.route(
                            "replace", dst=cidr, gateway=gateway, proto=self.protocol, table=self.table
                        )
                    except NetlinkError as exc:  # apply the others: one unreachable node must not cut off the rest
                        failures.append(f"cannot {verb} the route to {cidr} via {gateway}: {exc.args[-1]}")
            if failures:
                raise RouteError("; ".join(failures) + "; the gateway must be a node address on a directly "
                                 "connected network (host-gw needs one L2 segment)")
        return plan

    async def flush(self) -> RoutePlan:
        """Remove every route shoal installed (agent uninstall)."""
        return await self.sync({})
