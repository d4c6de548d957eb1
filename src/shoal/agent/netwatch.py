"""Pod networking on the node, as the agent drives it: conflist, recovery, host routes, services.

``NodeNetwork`` owns the agent's side of ``shoal.net``: it recovers pod sandboxes after a restart,
writes the node's CNI conflist once the server's IPAM has put ``spec.podCIDR`` on this Node (pods
wait until then, see ``ready``), keeps routes to every other node's pod CIDR (host-gw, or over the
VXLAN device ``shoal.vx`` to nodes behind a router: ``shoal.net.vxlan``), and mirrors
Services and Endpoints of all namespaces into the node's nftables service table (one debounced
transaction per burst of changes) and the cluster DNS zone; NetworkPolicy enforcement runs beside
them. ``mirror`` is the list+watch loop these share. It must not create or tear down pod sandboxes
(``pods`` does) and never touches containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shoal.client import AsyncClient, ClientError, ServerUnreachable, to_model
from shoal.net.protocol import NetworkError, SandboxNetwork
from shoal.net.routes import ROUTE_PROTOCOL
from shoal.net.vxlan import VXLAN_DEVICE

__all__ = ["SERVICE_DEBOUNCE_SECONDS", "SIMULATED_LABEL", "NodeNetwork", "Objects", "keep_applied", "mirror",
           "node_routes"]

log = logging.getLogger("shoal.agent.net")
SERVICE_DEBOUNCE_SECONDS = 0.05
_RETRY_MAX = 15.0
SIMULATED_LABEL = "shoal.io/simulated"
Objects = dict[tuple[str, str], dict[str, Any]]


class Routes(Protocol):
    async def sync(self, desired: dict[str, str]) -> object: ...


class ServiceTable(Protocol):
    def sync(self, services: Any, endpoints: Any) -> list[str]: ...


class BackgroundLoops(Protocol):
    def tasks(self, client: AsyncClient, stop: asyncio.Event) -> list[tuple[str, Coroutine[Any, Any, None]]]: ...


class ClusterDns(Protocol):
    def changed(self) -> None: ...

    def set_pod_cidr(self, cidr: str) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


async def mirror(client: AsyncClient, kind: str, objects: Objects, changed: Callable[[], None],
                 stop: asyncio.Event) -> None:
    """Keep ``objects`` equal to the server's objects of ``kind`` (all namespaces): list, then
    watch; call ``changed`` after the list and after every event. Re-lists after any error."""
    delay = 0.0
    while not stop.is_set():
        try:
            items, revision = await client.list(kind, None)
            objects.clear()
            objects.update((_key(o), o) for o in items)
            changed()
            delay = 0.0
            async for event, obj in client.watch(kind, None, revision):
                if event in ("ADDED", "MODIFIED"):
                    objects[_key(obj)] = obj
                elif event == "DELETED":
                    objects.pop(_key(obj), None)
                else:
                    continue
                changed()
                if stop.is_set():
                    return
        except ClientError as exc:
            delay = min(max(delay * 2, 0.5), _RETRY_MAX)
            level = logging.INFO if isinstance(exc, ServerUnreachable) else logging.WARNING
            log.log(level, "%s watch: %s (re-listing in %gs)", kind, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


def _internal_ip(node: dict[str, Any]) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if isinstance(address, dict) and address.get("type") == "InternalIP":
            return str(address.get("address") or "")
    return ""


def node_routes(nodes: Collection[dict[str, Any]], own: str) -> dict[str, str]:
    """``{podCIDR: InternalIP}`` of every other node that has both (hollow nodes of ``shoal sim`` have
    made-up addresses and no pods to reach: none)."""
    out: dict[str, str] = {}
    for node in nodes:
        if ((node.get("metadata") or {}).get("labels") or {}).get(SIMULATED_LABEL) == "true":
            continue
        name = str((node.get("metadata") or {}).get("name") or "")
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        address = _internal_ip(node)
        if name != own and cidr and address:
            out[cidr] = address
    return out


async def _shoal_routes_present() -> bool:
    """Are there routes with shoal's protocol number or its VXLAN device (left by an earlier run)?
    True when unsure."""
    for argv in (("-4", "route", "show", "proto", str(ROUTE_PROTOCOL)),
                 ("-6", "route", "show", "proto", str(ROUTE_PROTOCOL)), ("-o", "link", "show", "type", "vxlan")):
        try:
            proc = await asyncio.create_subprocess_exec("ip", *argv, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.DEVNULL)
        except OSError:
            return True
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return True
        if proc.returncode != 0 or (out.strip() if argv[1] == "route" else f" {VXLAN_DEVICE}:".encode() in out):
            return True
    return False


async def keep_applied(dirty: asyncio.Event, stop: asyncio.Event, what: str, apply: Callable[[], Awaitable[None]],
                       debounce: float = 0.0) -> None:
    """Run ``apply`` each time ``dirty`` is set (after ``debounce``, so a burst of watch events becomes one
    transaction) until ``stop``; a failure is logged and retried with backoff up to 15 s."""
    delay = 0.0
    while not stop.is_set():
        waiter = asyncio.ensure_future(dirty.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        if stop.is_set():
            return
        if debounce:
            await asyncio.sleep(debounce)  # a burst of watch events becomes one transaction
        dirty.clear()
        try:
            await apply()
            delay = 0.0
        except (NetworkError, OSError, ValueError) as exc:
            delay = min(max(delay * 2, 0.5), _RETRY_MAX)
            log.warning("%s: %s (retrying in %gs)", what, exc, delay)
            dirty.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


@dataclass
class NodeNetwork:
    """The node's pod networking. ``write_conflist(pod_cidr)`` writes the conflist (returns False
    when the file there is the user's own); ``on_ready`` runs when pods may start (conflist in place)."""

    node_name: str
    sandboxes: SandboxNetwork
    conflist_path: Path
    write_conflist: Callable[[str], bool]
    routes: Routes | None = None
    services: ServiceTable | None = None
    policies: BackgroundLoops | None = None  # NetworkPolicy enforcement (agent.policywatch.NodePolicies)
    dns: ClusterDns | None = None  # the pods' cluster DNS (agent.dns.NodeDns)
    on_ready: Callable[[], None] = lambda: None
    debounce: float = SERVICE_DEBOUNCE_SECONDS
    pod_cidr: str = ""
    nodes: Objects = field(default_factory=dict)
    service_objects: Objects = field(default_factory=dict)
    endpoint_objects: Objects = field(default_factory=dict)
    _ready: bool = False
    _routes_dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _services_dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _listed: set[str] = field(default_factory=set)
    _routed: bool = False
    _synced: int = 0

    def ready(self) -> bool:
        """May pods start? True once the conflist exists (also after a restart, before the server answers)."""
        if not self._ready and self.conflist_path.exists():
            self._ready = True
        return self._ready

    async def recover(self, live_pod_uids: Collection[str]) -> dict[str, Any]:
        """Keep the sandboxes of ``live_pod_uids``, tear down the rest; returns ``{uid: sandbox}``."""
        try:
            kept = await self.sandboxes.recover(live_pod_uids)
        except NetworkError as exc:
            log.warning("pod network recovery: %s", exc)
            return {}
        return {sb.pod_uid: sb for sb in kept}

    def _nodes_changed(self) -> None:
        own = self.nodes.get(("", self.node_name))
        cidr = str(((own or {}).get("spec") or {}).get("podCIDR") or "")
        if cidr and self.dns is not None:
            self.dns.set_pod_cidr(cidr)
        if cidr and cidr != self.pod_cidr:
            try:
                written = self.write_conflist(cidr)
            except (NetworkError, OSError) as exc:
                log.error("cannot write the CNI conflist %s for podCIDR %s: %s", self.conflist_path, cidr, exc)
            else:
                self.pod_cidr = cidr
                log.info("node %s: podCIDR %s; %s", self.node_name, cidr,
                         f"wrote {self.conflist_path}" if written else f"keeping the user's {self.conflist_path}")
        if not self._ready and self.ready():
            self.on_ready()
        self._routes_dirty.set()

    def _services_changed(self, kind: str) -> None:
        self._listed.add(kind)
        if self.dns is not None:
            self.dns.changed()
        if self._listed >= {"services", "endpoints"}:  # never sync Services without their Endpoints
            self._services_dirty.set()

    async def _apply_routes(self) -> None:
        assert self.routes is not None
        desired = node_routes(list(self.nodes.values()), self.node_name)
        if not desired and not self._routed and not await _shoal_routes_present():
            return  # a lone node: netlink (pyroute2, ~7 MB of RSS) is not needed until a second node shows up
        self._routed = True
        await self.routes.sync(desired)

    async def _apply_services(self) -> None:
        assert self.services is not None
        services: list[Any] = []
        endpoints: list[Any] = []
        for objects, out in ((self.service_objects, services), (self.endpoint_objects, endpoints)):
            for key, obj in list(objects.items()):
                try:
                    out.append(to_model(obj))
                except ValueError as exc:
                    log.warning("%s %s/%s left out of the service table: %s", obj.get("kind"), *key, exc)
        began = time.perf_counter()
        problems = await asyncio.to_thread(self.services.sync, services, endpoints)
        self._synced += 1
        log.debug("service table: %d services, %d endpoints in %.1f ms", len(services), len(endpoints),
                  (time.perf_counter() - began) * 1000)
        for problem in problems:
            log.warning("service table: %s", problem)

    def tasks(self, client: AsyncClient, stop: asyncio.Event) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The background loops to run under the agent's TaskGroup."""
        out: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("nodes", mirror(client, "nodes", self.nodes, self._nodes_changed, stop))]
        if self.routes is not None:
            out.append(("routes", keep_applied(self._routes_dirty, stop, "host routes", self._apply_routes)))
        if self.services is not None or self.dns is not None:
            out += [("services", mirror(client, "services", self.service_objects,
                                        lambda: self._services_changed("services"), stop)),
                    ("endpoints", mirror(client, "endpoints", self.endpoint_objects,
                                         lambda: self._services_changed("endpoints"), stop))]
        if self.services is not None:
            out.append(("service table", keep_applied(self._services_dirty, stop, "service table",
                                                      self._apply_services, self.debounce)))
        if self.dns is not None:
            out.append(("cluster dns", self.dns.run(stop)))
        if self.policies is not None:
            out += self.policies.tasks(client, stop)
        return out
