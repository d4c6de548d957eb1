"""Service addresses: every Service gets a ``spec.clusterIP`` from the service CIDR (default
10.96.0.0/16, the first host address reserved) and every port of a NodePort Service a
``nodePort`` from 30000-32767, never one another Service holds.

``allocate_service`` is pure: the Service and the other Services in, an Update (or a Warning
event saying how to fix an exhausted range or a clash) out. Addresses a user chose are kept; a
clash with an older Service is reported, not silently changed. The allocator sees only its own
cache, so the server must run it with one worker (see ``ServiceIPAllocator``). It never reads
the store and never touches the network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import msgspec

from shoal.controllers.actions import Action, Actions, EmitEvent, EventType, Key, Update, ref_of
from shoal.controllers.cache import Cache
from shoal.controllers.runner import Enqueue, KeyMapper, no_trigger, own_key
from shoal.model import Service
from shoal.model.service import ServicePort, ServiceType

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
NODE_PORT_MIN = 30000
NODE_PORT_MAX = 32767
HEADLESS = "None"

REASON_IP_EXHAUSTED = "ClusterIPNotAvailable"
REASON_IP_CLASH = "ClusterIPAlreadyAllocated"
REASON_IP_INVALID = "ClusterIPInvalid"
REASON_PORT_EXHAUSTED = "NodePortNotAvailable"
REASON_PORT_CLASH = "NodePortAlreadyAllocated"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _age(svc: Service) -> tuple[str, str, str]:
    return svc.metadata.creation_timestamp, svc.metadata.namespace, svc.metadata.name


def _same(a: Service, b: Service) -> bool:
    return (a.metadata.namespace, a.metadata.name) == (b.metadata.namespace, b.metadata.name)


def _warn(svc: Service, reason: str, message: str) -> EmitEvent:
    return EmitEvent(ref_of(svc), reason, message, EventType.WARNING)


def _assign_ip(svc: Service, others: list[Service], cidr: Network) -> tuple[str, list[Action]]:
    """The cluster IP ``svc`` should have and any warnings about the one it has."""
    current = svc.spec.cluster_ip
    if current == HEADLESS:
        return current, []
    if current:
        try:
            ipaddress.ip_address(current)
        except ValueError:
            return current, [_warn(svc, REASON_IP_INVALID, f'spec.clusterIP: "{current}" is not an IP address; '
                                   f"remove the field to get one from {cidr}")]
        older = [o for o in others if o.spec.cluster_ip == current and _age(o) < _age(svc)]
        if older:
            holder = older[0].metadata
            return current, [_warn(svc, REASON_IP_CLASH, f"spec.clusterIP: {current} is already the address of "
                                   f"Service {holder.namespace}/{holder.name}; remove the field to get a free one")]
        return current, []
    taken = {o.spec.cluster_ip for o in others}
    hosts = cidr.hosts()
    next(hosts, None)  # the first host address is reserved (the API's own address in Kubernetes)
    for candidate in hosts:
        if str(candidate) not in taken:
            return str(candidate), []
    return "", [_warn(svc, REASON_IP_EXHAUSTED, f"every address of the service CIDR {cidr} is taken; "
                      "delete unused Services or widen --service-cidr")]


def _assign_node_ports(svc: Service, others: list[Service],
                       port_range: range) -> tuple[list[ServicePort], list[Action]]:
    if svc.spec.type != ServiceType.NODE_PORT:
        return svc.spec.ports, []
    owner: dict[int, Service] = {}
    for other in sorted(others, key=_age):
        for port in other.spec.ports:
            owner.setdefault(port.node_port, other)
    warnings: list[Action] = []
    mine = {p.node_port for p in svc.spec.ports if p.node_port}
    for i, port in enumerate(svc.spec.ports):
        holder = owner.get(port.node_port) if port.node_port else None
        if holder is not None and _age(holder) < _age(svc):
            warnings.append(_warn(svc, REASON_PORT_CLASH, f"spec.ports[{i}].nodePort: {port.node_port} is already "
                                  f"used by Service {holder.metadata.namespace}/{holder.metadata.name}; "
                                  "remove the field to get a free one"))
    free = (p for p in port_range if p not in owner and p not in mine)
    ports: list[ServicePort] = []
    for i, port in enumerate(svc.spec.ports):
        if port.node_port:
            ports.append(port)
            continue
        chosen = next(free, None)
        if chosen is None:
            warnings.append(_warn(svc, REASON_PORT_EXHAUSTED, f"spec.ports[{i}]: every node port in "
                                  f"{port_range.start}-{port_range.stop - 1} is taken; delete unused NodePort "
                                  "Services or use type ClusterIP"))
            ports.append(port)
            continue
        ports.append(msgspec.structs.replace(port, node_port=chosen))
    return ports, warnings


def allocate_service(svc: Service, others: Iterable[Service], cidr: Network,
                     port_range: range = range(NODE_PORT_MIN, NODE_PORT_MAX + 1)) -> Actions:
    """Fill in ``svc``'s missing cluster IP and node ports with ones no other Service holds."""
    rest = [o for o in others if not _same(o, svc)]
    cluster_ip, ip_warnings = _assign_ip(svc, rest, cidr)
    ports, port_warnings = _assign_node_ports(svc, rest, port_range)
    steps: list[Action] = []
    if cluster_ip != svc.spec.cluster_ip or ports != svc.spec.ports:
        spec = msgspec.structs.replace(svc.spec, cluster_ip=cluster_ip, ports=ports)
        steps.append(Update(msgspec.structs.replace(svc, spec=spec)))
    return Actions((*steps, *ip_warnings, *port_warnings))


class ServiceIPAllocator:
    """Adapts ``allocate_service`` to the runner. Run it with ``workers=1``: two workers could each
    pick the same free address before either write reaches the cache."""

    name = "service-ip"
    kind = "Service"

    def __init__(self, service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        try:
            self.cidr: Network = ipaddress.ip_network(service_cidr)
        except ValueError as exc:
            raise ValueError(f"--service-cidr {service_cidr!r} is not a network like 10.96.0.0/16: {exc}") from None
        if self.cidr.num_addresses < 4:
            raise ValueError(f"--service-cidr {service_cidr} is too small; use a /30 or larger")

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"Service": own_key}

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        svc = cache.get(key)
        if not isinstance(svc, Service):
            return Actions()
        others = [o for o in cache.objects("Service") if isinstance(o, Service)]
        return allocate_service(svc, others, self.cidr)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)
