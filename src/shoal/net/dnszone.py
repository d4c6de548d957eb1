"""The cluster DNS zone: records built from Services and Endpoints, and answers to names and types.

``build_zone`` turns Services and Endpoints into a ``Zone``: ``<svc>.<ns>.svc.<domain>`` A records
(the ClusterIP; for headless Services the ready endpoint addresses, each also named
``<a-b-c-d>.<svc>.<ns>.svc.<domain>``), SRV records ``_<port>._<proto>.<svc>.<ns>.svc.<domain>`` for
named ports, and PTR records for ClusterIPs and endpoint addresses. ``<a-b-c-d>.<ns>.pod.<domain>``
answers the address it spells (CoreDNS's ``pods insecure``). ``lookup`` answers a name and type from
a zone, or returns None for names the zone does not own. Pure: no sockets, no wire format.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from shoal.model.endpoints import Endpoints
from shoal.model.service import Service

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TTL", "HEADLESS", "Lookup", "Record", "RecordType", "Srv", "Zone", "build_zone",
           "dashed", "lookup"]

DEFAULT_DOMAIN = "shoal"
DEFAULT_TTL = 5  # seconds; answers and negative answers (SOA minimum), as CoreDNS's kubernetes plugin
HEADLESS = "None"


class RecordType(StrEnum):
    A = "A"
    AAAA = "AAAA"
    SRV = "SRV"
    PTR = "PTR"
    SOA = "SOA"
    ANY = "ANY"


@dataclass(frozen=True, slots=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    type: RecordType
    value: str | Srv


@dataclass(frozen=True, slots=True)
class Zone:
    """Everything the node answers for ``domain``: ``records[name][type]`` (names lower case, no final dot),
    ``names`` every name that exists (empty non-terminals too), ``reverse`` the networks whose PTR names
    are ours (unknown addresses in them get NXDOMAIN instead of being forwarded)."""

    domain: str = DEFAULT_DOMAIN
    records: Mapping[str, Mapping[RecordType, tuple[str | Srv, ...]]] = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    reverse: tuple[ipaddress.IPv4Network, ...] = ()
    serial: int = 1


@dataclass(frozen=True, slots=True)
class Lookup:
    rcode: str  # "NOERROR" | "NXDOMAIN"
    answers: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv4Address) else None


def _ptr_name(ip: ipaddress.IPv4Address) -> str:
    return ".".join(reversed(str(ip).split("."))) + ".in-addr.arpa"


class _Builder:
    def __init__(self, domain: str) -> None:
        self.records: dict[str, dict[RecordType, list[str | Srv]]] = {}
        self.names: set[str] = {domain, f"svc.{domain}", f"pod.{domain}"}

    def add(self, name: str, rtype: RecordType, value: str | Srv) -> None:
        values = self.records.setdefault(name, {}).setdefault(rtype, [])
        if value not in values:
            values.append(value)
        labels = name.split(".")
        self.names.update(".".join(labels[i:]) for i in range(len(labels)) if not name.endswith(".in-addr.arpa"))

    def ptr(self, ip: ipaddress.IPv4Address, target: str) -> None:
        name = _ptr_name(ip)
        if name not in self.records:  # first owner wins: a ClusterIP before a pod address
            self.records[name] = {RecordType.PTR: [target]}


def build_zone(services: Iterable[Service], endpoints: Iterable[Endpoints], *, domain: str = DEFAULT_DOMAIN,
               reverse: Sequence[str] = (), serial: int = 1) -> tuple[Zone, list[str]]:
    """The zone for these Services and Endpoints, and the Services left out (why)."""
    domain = domain.lower().strip(".")
    b = _Builder(domain)
    problems: list[str] = []
    by_key = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
    for svc in sorted(services, key=lambda s: (s.metadata.namespace, s.metadata.name)):
        ns, name, spec = svc.metadata.namespace or "default", svc.metadata.name, svc.spec
        fqdn = f"{name}.{ns}.svc.{domain}".lower()
        b.names.add(fqdn)
        b.names.add(f"{ns}.svc.{domain}".lower())
        headless = spec.cluster_ip == HEADLESS
        cluster_ip = _ipv4(spec.cluster_ip)
        if spec.cluster_ip and not headless and cluster_ip is None:
            problems.append(f"Service {ns}/{name}: spec.clusterIP {spec.cluster_ip!r} is not an IPv4 address; "
                            "it gets no DNS A record")
        if cluster_ip is not None:
            b.add(fqdn, RecordType.A, str(cluster_ip))
            b.ptr(cluster_ip, fqdn)
        eps = by_key.get((svc.metadata.namespace, name))
        ready: list[tuple[ipaddress.IPv4Address, dict[tuple[str, str], int]]] = []
        for subset in eps.subsets if eps is not None else ():
            ports = {(p.name, p.protocol): p.port for p in subset.ports}
            for address in subset.addresses:
                ip = _ipv4(address.ip)
                if ip is not None:
                    ready.append((ip, ports))
        for ip, _ in ready if headless else ():
            host = f"{dashed(str(ip))}.{fqdn}"
            b.add(fqdn, RecordType.A, str(ip))
            b.add(host, RecordType.A, str(ip))
            b.ptr(ip, host)
        for port in spec.ports:
            if not port.name:
                continue
            srv = f"_{port.name}._{port.protocol}.{fqdn}".lower()
            if cluster_ip is not None:
                b.add(srv, RecordType.SRV, Srv(0, 100, port.port, fqdn))
            elif headless:
                for ip, ports in ready:
                    if (port.name, port.protocol) in ports:
                        b.add(srv, RecordType.SRV, Srv(0, 100, ports[(port.name, port.protocol)],
                                                       f"{dashed(str(ip))}.{fqdn}"))
            b.names.add(srv)
    for eps in by_key.values():  # pod addresses behind ClusterIP Services: PTR to their pod name
        for subset in eps.subsets:
            for address in subset.addresses + subset.not_ready_addresses:
                ip = _ipv4(address.ip)
                if address.target_ref is not None and address.target_ref.kind not in ("", "Pod"):
                    continue  # a registered device or external service: not a pod, its address is not ours
                ns = (address.target_ref.namespace if address.target_ref else "") or eps.metadata.namespace
                if ip is not None and ns:
                    b.ptr(ip, f"{dashed(str(ip))}.{ns}.pod.{domain}".lower())
    networks: list[ipaddress.IPv4Network] = []
    for text in reverse:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            problems.append(f"reverse zone {text!r} is not a network like 10.96.0.0/16")
            continue
        if isinstance(net, ipaddress.IPv4Network):
            networks.append(net)
    records = {n: {t: tuple(v) for t, v in types.items()} for n, types in b.records.items()}
    return Zone(domain, records, frozenset(b.names), tuple(networks), serial), problems


def _soa(zone: Zone, owner: str) -> Record:
    return Record(owner, RecordType.SOA, f"ns.dns.{zone.domain}. hostmaster.{zone.domain}. {zone.serial} "
                                         f"7200 1800 86400 {DEFAULT_TTL}")


def _pod_address(zone: Zone, name: str) -> str | None:
    """``a-b-c-d.<ns>.pod.<domain>`` → ``a.b.c.d``; None when the name is not one."""
    labels = name[: -len(zone.domain) - 1].split(".")
    if len(labels) != 3 or labels[2] != "pod" or labels[0].count("-") != 3:
        return None
    ip = _ipv4(labels[0].replace("-", "."))
    return str(ip) if ip is not None else None


def _reverse_address(name: str) -> ipaddress.IPv4Address | None:
    labels = name.split(".")
    if len(labels) != 6 or not all(label.isdigit() and len(label) <= 3 for label in labels[:4]):
        return None
    return _ipv4(".".join(reversed(labels[:4])))


def _reverse_owner(net: ipaddress.IPv4Network) -> str:
    octets = str(net.network_address).split(".")[: net.prefixlen // 8]
    return ".".join([*reversed(octets), "in-addr.arpa"])


def lookup(zone: Zone, qname: str, qtype: RecordType | str) -> Lookup | None:
    """The zone's answer for ``qname``/``qtype`` (any case, final dot optional); None: not ours, forward it."""
    name = qname.lower().rstrip(".")
    rtype = RecordType(qtype) if qtype in RecordType.__members__ else None  # other types: no data here
    if name.endswith(".in-addr.arpa"):
        ip = _reverse_address(name)
        records = zone.records.get(name)
        if ip is None:
            return None
        if records is None:
            owners = [net for net in zone.reverse if ip in net]
            if not owners:
                return None
            return Lookup("NXDOMAIN", authority=(_soa(zone, _reverse_owner(owners[0])),))
    elif name == zone.domain or name.endswith("." + zone.domain):
        records = zone.records.get(name)
        pod_ip = _pod_address(zone, name)
        if pod_ip is not None:
            records = {RecordType.A: (pod_ip,)}
        elif name == zone.domain:
            records = {RecordType.SOA: (_soa(zone, name).value,)}
        if records is None:
            namespace_of_pods = name.endswith(f".pod.{zone.domain}") and name.count(".") == zone.domain.count(".") + 2
            known = name in zone.names or namespace_of_pods
            return Lookup("NOERROR" if known else "NXDOMAIN", authority=(_soa(zone, zone.domain),))
    else:
        return None
    types = list(records) if rtype is RecordType.ANY else [rtype] if rtype is not None and rtype in records else []
    answers = tuple(Record(name, t, v) for t in types for v in records[t])
    if not answers:
        owner = zone.domain if name.endswith(zone.domain) else name.split(".", 1)[1]
        return Lookup("NOERROR", authority=(_soa(zone, owner),))
    additional = tuple(Record(v.target, RecordType.A, ip) for r in answers if isinstance(v := r.value, Srv)
                       for ip in (zone.records.get(v.target) or {}).get(RecordType.A, ()))
    return Lookup("NOERROR", answers, additional)
