"""The node's cluster DNS as the agent runs it: the zone kept current, the listener, pods' resolv.conf.

``NodeDns`` reads the Services and Endpoints dicts that ``NodeNetwork``'s mirrors keep (it is handed
the same dicts and told ``changed()`` after every event), rebuilds the zone (debounced, in the event
loop, so a query never sees a half-built zone) and serves it with ``shoal.net.dns.DnsServer`` on the
pod network's gateway (the bridge's address, the first address of the node's podCIDR) port 53, UDP
and TCP; names outside the cluster domain go to the resolvers of the host's /etc/resolv.conf.
``write_pod_resolv_conf`` writes the resolv.conf a pod's containers get at /etc/resolv.conf. It must
not talk to the server or create pod networks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.client import to_model
from shoal.model.endpoints import Endpoints
from shoal.model.service import Service
from shoal.net.dns import DnsServer, Upstream
from shoal.net.dnszone import DEFAULT_DOMAIN, Zone, build_zone
from shoal.runtime.protocol import Mount

__all__ = ["DNS_DEBOUNCE_SECONDS", "HostResolvers", "NodeDns", "gateway_address", "pod_resolv_conf",
           "resolv_conf_mount", "write_pod_resolv_conf"]

log = logging.getLogger("shoal.agent.dns")
DNS_DEBOUNCE_SECONDS = 0.05
RESOLV_CONF_NAME = "resolv.conf"
_RETRY_MAX = 15.0
_REREAD_SECONDS = 1.0
Objects = dict[tuple[str, str], dict[str, Any]]


def gateway_address(pod_cidr: str) -> str:
    """The pod network's gateway (the bridge's address): the first host address of ``pod_cidr``."""
    try:
        net = ipaddress.ip_network(pod_cidr, strict=False)
    except ValueError:
        raise ValueError(f"podCIDR {pod_cidr!r} is not a network like 10.77.3.0/24") from None
    return str(net.network_address + 1)


def pod_resolv_conf(namespace: str, nameserver: str, domain: str = DEFAULT_DOMAIN) -> str:
    """What a pod in ``namespace`` finds in /etc/resolv.conf (Kubernetes' ClusterFirst policy)."""
    ns = namespace or "default"
    return f"nameserver {nameserver}\nsearch {ns}.svc.{domain} svc.{domain} {domain}\noptions ndots:5\n"


def write_pod_resolv_conf(pod_dir: Path, namespace: str, nameserver: str, domain: str = DEFAULT_DOMAIN) -> Path:
    """Write ``<pod_dir>/resolv.conf`` (atomically, only when it changes); returns its path."""
    path = pod_dir / RESOLV_CONF_NAME
    text = pod_resolv_conf(namespace, nameserver, domain)
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return path
    pod_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{RESOLV_CONF_NAME}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


def resolv_conf_mount(path: Path) -> Mount:
    """The read-only bind mount of a pod's resolv.conf at /etc/resolv.conf."""
    return Mount(destination="/etc/resolv.conf", source=str(path), read_only=True, options=("rbind", "ro"))


@dataclass
class HostResolvers:
    """The host's resolvers (``nameserver`` lines of ``path``, port 53), re-read when the file changes."""

    path: Path = Path("/etc/resolv.conf")
    _stamp: tuple[float, int] = (-1.0, -1)
    _checked: float = -_REREAD_SECONDS
    _servers: list[Upstream] = field(default_factory=list)

    def __call__(self) -> list[Upstream]:
        now = time.monotonic()
        if now - self._checked < _REREAD_SECONDS:
            return self._servers
        self._checked = now
        try:
            st = self.path.stat()
            if (st.st_mtime, st.st_size) != self._stamp:
                self._servers = self._parse(self.path.read_text(encoding="utf-8"))
                self._stamp = (st.st_mtime, st.st_size)
        except OSError as exc:
            if self._stamp != (-1.0, -1):
                log.warning("cluster DNS: cannot read the host's resolvers from %s: %s", self.path, exc)
            self._servers, self._stamp = [], (-1.0, -1)
        return self._servers

    def _parse(self, text: str) -> list[Upstream]:
        servers: list[Upstream] = []
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                try:
                    servers.append((str(ipaddress.ip_address(words[1].split("%")[0])), 53))
                except ValueError:
                    log.warning("cluster DNS: %s: %r is not an address; ignored", self.path, words[1])
        if not servers:
            log.warning("cluster DNS: %s names no nameserver; names outside the cluster get SERVFAIL", self.path)
        return servers


@dataclass
class NodeDns:
    """Cluster DNS for this node's pods. Hand it ``NodeNetwork``'s ``service_objects`` and
    ``endpoint_objects`` and call ``changed()`` after each of their events; ``set_pod_cidr`` once the
    node's podCIDR is known (it listens on its gateway), or give ``listen`` a fixed address."""

    services: Objects
    endpoints: Objects
    domain: str = DEFAULT_DOMAIN
    port: int = 53
    listen: str = ""
    upstreams: Callable[[], Sequence[Upstream]] = field(default_factory=HostResolvers)
    reverse: tuple[str, ...] = ()  # networks whose unknown PTR names get NXDOMAIN (the podCIDR is added)
    debounce: float = DNS_DEBOUNCE_SECONDS
    timeout: float = 2.0
    pod_cidr: str = ""
    _zone: Zone = field(default_factory=Zone)
    _dirty: bool = True
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _server: DnsServer | None = None
    _rebuilt: int = 0

    def __post_init__(self) -> None:
        self.domain = self.domain.lower().strip(".")
        self._zone = Zone(self.domain)

    @property
    def nameserver(self) -> str:
        """The address pods send queries to ("" until the podCIDR is known)."""
        if self.listen:
            return self.listen
        return gateway_address(self.pod_cidr) if self.pod_cidr else ""

    @property
    def serving(self) -> tuple[str, int] | None:
        """The bound (address, port), or None while not listening."""
        return self._server.address if self._server is not None else None

    def zone(self) -> Zone:
        return self._zone

    def changed(self) -> None:
        """Services or Endpoints changed: rebuild the zone (debounced)."""
        self._dirty = True
        self._wake.set()

    def set_pod_cidr(self, pod_cidr: str) -> None:
        """Listen on this podCIDR's gateway (idempotent; a malformed CIDR is logged and ignored)."""
        if pod_cidr != self.pod_cidr:
            try:
                gateway_address(pod_cidr)
            except ValueError as exc:
                log.error("cluster DNS: the Node's spec.%s; not serving on it", exc)
                return
            self.pod_cidr = pod_cidr
            self.changed()

    def resolv_conf(self, namespace: str) -> str:
        return pod_resolv_conf(namespace, self.nameserver, self.domain)

    def write_resolv_conf(self, pod_dir: Path, namespace: str) -> Path:
        """The pod's resolv.conf under ``pod_dir``; ValueError while the node's podCIDR is unknown."""
        if not self.nameserver:
            raise ValueError("cluster DNS has no address yet: the node's spec.podCIDR is not assigned")
        return write_pod_resolv_conf(pod_dir, namespace, self.nameserver, self.domain)

    def pod_mount(self, pod_dir: Path, namespace: str) -> Mount:
        """Write the pod's resolv.conf and return its bind mount at /etc/resolv.conf (``PodContext.dns_mount``)."""
        return resolv_conf_mount(self.write_resolv_conf(pod_dir, namespace))

    def rebuild(self) -> Zone:
        models: dict[str, list[Any]] = {"services": [], "endpoints": []}
        for kind, objects, want in (("services", self.services, Service), ("endpoints", self.endpoints, Endpoints)):
            for key, obj in list(objects.items()):
                try:
                    model = to_model(obj)
                except ValueError as exc:
                    log.warning("%s %s/%s left out of cluster DNS: %s", obj.get("kind"), *key, exc)
                    continue
                if isinstance(model, want):
                    models[kind].append(model)
        reverse = (*self.reverse, self.pod_cidr) if self.pod_cidr else self.reverse
        self._rebuilt += 1
        zone, problems = build_zone(models["services"], models["endpoints"], domain=self.domain, reverse=reverse,
                                    serial=self._rebuilt)
        for problem in problems:
            log.warning("cluster DNS: %s", problem)
        self._zone = zone
        return zone

    async def _bind(self, address: str) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None
        server = DnsServer(self.zone, self.upstreams, self.timeout)
        await server.start(address, self.port)
        self._server = server
        log.info("cluster DNS: serving %s on %s:%d (UDP and TCP)", self.domain, address, server.address[1])

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``: rebuild the zone on changes, (re)bind when the address changes."""
        delay = 0.0
        try:
            while not stop.is_set():
                self._wake.clear()
                if self._dirty:
                    if self.debounce:
                        await asyncio.sleep(self.debounce)  # a burst of watch events becomes one rebuild
                    self._dirty = False
                    self.rebuild()
                address = self.nameserver
                wait: float | None = None
                if address and (self._server is None or self._server.address[0] != address):
                    try:
                        await self._bind(address)
                        delay = 0.0
                    except OSError as exc:
                        delay = min(max(delay * 2, 0.5), _RETRY_MAX)
                        log.error("%s (retrying in %gs)", exc.strerror or exc, delay)
                        wait = delay
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait((waiter, stopper), timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    stopper.cancel()
        finally:
            if self._server is not None:
                await self._server.close()
                self._server = None
