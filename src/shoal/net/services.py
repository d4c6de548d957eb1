"""Service virtual IPs on a node: the whole service table as one nftables table, ``ip shoal``.

``service_rules`` (pure) turns Services and Endpoints into one ``PortRule`` per Service port;
``render`` (pure) turns the rules into one ``nft -f`` script that flushes the table and rebuilds
it in a single transaction, so packets never see a half-updated table. Layout, after kube-proxy's
nftables mode:

```
prerouting/output (nat, dstnat) ─► services: daddr.proto.dport vmap @service-ips ─► svc-<key>
                                   node address: proto.dport vmap @service-nodeports ─► nodeport-<key>
svc-<key>:  [ip saddr @aff-<ep> goto ep-<ep>]…  numgen inc mod N vmap {slot: goto ep-<ep>}
ep-<ep>:    [hairpin → mark] [update @aff-<ep> {ip saddr}]  dnat to IP:PORT
nodeport-<key>: mark (masquerade) → goto svc-<key>      postrouting: mark → masquerade
filter forward/output: daddr.proto.dport @no-endpoints → reject (connection refused at once)
```

Round-robin maps slot i to endpoint i. Weighted spreads ``sum(weights)`` slots (reduced by their
gcd, at most ``MAX_SLOTS``) in smooth weighted round-robin order, so a 3:1:1 split sends exactly 3
of every 5 new connections to the first endpoint. ClientIP affinity keeps a dynamic set with a
timeout (``AFFINITY_TIMEOUT_SECONDS``) of client addresses per endpoint, refreshed on every new
connection; the sets survive re-syncs (``flush table`` keeps set elements). Only new connections
are balanced: conntrack keeps an open connection on its endpoint. ``NftServiceTable`` applies the
script with ``nft`` and sets ``net.bridge.bridge-nf-call-iptables=1`` so replies between pods on
one bridge pass conntrack. This module touches nothing outside its own table and imports nothing
of the server.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shoal.model.endpoints import Endpoints
from shoal.model.service import Service, ServiceType
from shoal.net.nft import run_tool
from shoal.net.protocol import NetworkError

__all__ = [
    "AFFINITY_TIMEOUT_SECONDS",
    "MASQUERADE_MARK",
    "MAX_SLOTS",
    "TABLE",
    "Backend",
    "NftServiceTable",
    "PortRule",
    "ServiceTableError",
    "TableState",
    "render",
    "service_rules",
    "slot_order",
]

TABLE = "shoal"
FAMILY = "ip"
MASQUERADE_MARK = 0x8000  # set on NodePort and hairpin connections; masqueraded in postrouting
AFFINITY_TIMEOUT_SECONDS = 10800  # Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds
MAX_SLOTS = 1000
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_BASE_CHAINS = {
    "prerouting": "type nat hook prerouting priority dstnat; policy accept;",
    "output": "type nat hook output priority -100; policy accept;",  # nft 1.0.6 has no "dstnat" here
    "postrouting": "type nat hook postrouting priority srcnat; policy accept;",
    "filter-forward": "type filter hook forward priority filter; policy accept;",
    "filter-output": "type filter hook output priority filter; policy accept;",
}
_FIXED_CHAINS = (*_BASE_CHAINS, "services")
_MAPS = {"service-ips": "type ipv4_addr . inet_proto . inet_service : verdict;",
         "service-nodeports": "type inet_proto . inet_service : verdict;"}
_SETS = {"no-endpoints": "type ipv4_addr . inet_proto . inet_service;"}
_NAME_OK = re.compile(r"^[a-z][a-z0-9./_-]{0,199}$")


class ServiceTableError(NetworkError):
    pass


@dataclass(frozen=True, slots=True)
class Backend:
    ip: str
    port: int
    weight: int = 1


@dataclass(frozen=True, slots=True)
class PortRule:
    """One Service port as the node sees it."""

    key: str  # namespace/name/protocol/port
    cluster_ip: str
    protocol: str  # nft keyword: tcp | udp | sctp
    port: int
    node_port: int = 0
    backends: tuple[Backend, ...] = ()
    weighted: bool = False
    affinity_seconds: int = 0  # 0 = no session affinity


@dataclass(frozen=True, slots=True)
class TableState:
    """The names already in the kernel's table (stale ones are deleted by the next script)."""

    chains: frozenset[str] = frozenset()
    sets: frozenset[str] = frozenset()
    maps: frozenset[str] = frozenset()
    exists: bool = False


def _ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def _backends(svc: Service, name: str, protocol: str, eps: Endpoints | None) -> tuple[Backend, ...]:
    found: dict[tuple[str, int], Backend] = {}
    for subset in eps.subsets if eps is not None else ():
        for port in subset.ports:
            if port.name != name or port.protocol != protocol:
                continue
            for address in subset.addresses:
                found.setdefault((address.ip, port.port), Backend(address.ip, port.port, max(address.weight, 0)))
    return tuple(sorted(found.values(), key=lambda b: (ipaddress.ip_address(b.ip), b.port)))


def service_rules(services: Iterable[Service],
                  endpoints: Iterable[Endpoints]) -> tuple[list[PortRule], list[str]]:
    """Rules for every Service port with a cluster IP, and the Services that could not be rendered (why)."""
    by_key = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
    rules: list[PortRule] = []
    problems: list[str] = []
    for svc in sorted(services, key=lambda s: (s.metadata.namespace, s.metadata.name)):
        ns, name, spec = svc.metadata.namespace, svc.metadata.name, svc.spec
        if spec.cluster_ip in ("", "None"):
            continue  # not allocated yet, or headless
        where = f"Service {ns}/{name}"
        if not _ipv4(spec.cluster_ip):
            problems.append(f"{where}: spec.clusterIP {spec.cluster_ip!r} is not an IPv4 address; "
                            "only IPv4 services are proxied")
            continue
        eps = by_key.get((ns, name))
        weighted = spec.load_balancing is not None and spec.load_balancing.policy == "Weighted"
        for i, port in enumerate(spec.ports):
            protocol = _PROTOCOLS.get(port.protocol)
            if protocol is None:
                problems.append(f"{where}: spec.ports[{i}].protocol {port.protocol!r} is not TCP, UDP or SCTP")
                continue
            backends = tuple(b for b in _backends(svc, port.name, port.protocol, eps) if _ipv4(b.ip))
            rules.append(PortRule(
                key=f"{ns}/{name}/{protocol}/{port.port}", cluster_ip=spec.cluster_ip, protocol=protocol,
                port=port.port, node_port=port.node_port if spec.type == ServiceType.NODE_PORT else 0,
                backends=backends, weighted=weighted,
                affinity_seconds=AFFINITY_TIMEOUT_SECONDS if spec.session_affinity == "ClientIP" else 0))
    return rules, problems


def slot_order(weights: Sequence[int]) -> list[int]:
    """Backend index per slot: smooth weighted round-robin over the reduced weights (nginx's)."""
    positive = [w for w in weights if w > 0]
    if not positive:
        return []
    divisor = math.gcd(*positive)
    reduced = [w // divisor if w > 0 else 0 for w in weights]
    total = sum(reduced)
    if total > MAX_SLOTS:
        reduced = [max(1, round(w * MAX_SLOTS / total)) if w > 0 else 0 for w in reduced]
        total = sum(reduced)
    current = [0] * len(reduced)
    order: list[int] = []
    for _ in range(total):
        for i, w in enumerate(reduced):
            current[i] += w
        best = max(range(len(reduced)), key=lambda i: (current[i], -i))
        current[best] -= total
        order.append(best)
    return order


def _ident(text: str) -> str:
    return text if _NAME_OK.match(text) else "h-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _ep_name(rule: PortRule, b: Backend) -> str:
    return _ident(f"ep-{rule.key}/{b.ip}/{b.port}")


def _aff_name(rule: PortRule, b: Backend) -> str:
    return _ident(f"aff-{rule.key}/{b.ip}/{b.port}")


def _slots(rule: PortRule) -> list[int]:
    if rule.weighted:
        return slot_order([b.weight for b in rule.backends])
    return list(range(len(rule.backends)))


def _vmap(order: list[int], names: list[str]) -> str:
    runs: list[str] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and order[end + 1] == order[start]:
            end += 1
        slot = f"{start}" if start == end else f"{start}-{end}"
        runs.append(f"{slot} : goto {names[order[start]]}")
        start = end + 1
    return f"numgen inc mod {len(order)} vmap {{ {', '.join(runs)} }}"


def _port_lines(rule: PortRule, t: str) -> tuple[list[str], list[str], list[str]]:
    """(declarations, rules, map elements) for one Service port."""
    decls: list[str] = []
    rules: list[str] = []
    elements: list[str] = []
    svc = _ident(f"svc-{rule.key}")
    order = _slots(rule)
    if not order:
        elements.append(f"add element {t} no-endpoints {{ {rule.cluster_ip} . {rule.protocol} . {rule.port} }}")
        return decls, rules, elements
    used = sorted(set(order))
    names = [_ep_name(rule, b) for b in rule.backends]
    decls.append(f"add chain {t} {svc}")
    for i in used:
        decls.append(f"add chain {t} {names[i]}")
        if rule.affinity_seconds:
            aff = _aff_name(rule, rule.backends[i])
            decls.append(f"add set {t} {aff} {{ type ipv4_addr; flags dynamic,timeout; "
                         f"timeout {rule.affinity_seconds}s; }}")
            rules.append(f"add rule {t} {svc} ip saddr @{aff} goto {names[i]}")
    rules.append(f"add rule {t} {svc} " + (f"goto {names[order[0]]}" if len(used) == 1 else _vmap(order, names)))
    for i in used:
        b = rule.backends[i]
        rules.append(f"add rule {t} {names[i]} ip saddr {b.ip} meta mark set meta mark | {MASQUERADE_MARK:#x}")
        if rule.affinity_seconds:
            rules.append(f"add rule {t} {names[i]} update @{_aff_name(rule, b)} {{ ip saddr }}")
        rules.append(f"add rule {t} {names[i]} meta l4proto {rule.protocol} dnat to {b.ip}:{b.port}")
    elements.append(f"add element {t} service-ips {{ {rule.cluster_ip} . {rule.protocol} . {rule.port} : goto {svc} }}")
    if rule.node_port:
        nodeport = _ident(f"nodeport-{rule.key}")
        decls.append(f"add chain {t} {nodeport}")
        rules.append(f"add rule {t} {nodeport} meta mark set meta mark | {MASQUERADE_MARK:#x}")
        rules.append(f"add rule {t} {nodeport} goto {svc}")
        elements.append(f"add element {t} service-nodeports {{ {rule.protocol} . {rule.node_port} : goto {nodeport} }}")
    return decls, rules, elements


def _declared(lines: Iterable[str], what: str) -> set[str]:
    prefix = f"add {what} {FAMILY} {TABLE} "
    return {line[len(prefix):].split(" ", 1)[0] for line in lines if line.startswith(prefix)}


def render(rules: Sequence[PortRule], existing: TableState = TableState(),
           node_addresses: Sequence[str] = ()) -> str:
    """The ``nft -f`` script that makes table ``ip shoal`` exactly ``rules``, in one transaction.

    NodePorts answer on ``node_addresses``, or on every local address but loopback when empty."""
    t = f"{FAMILY} {TABLE}"
    decls = [f"add chain {t} {name} {{ {spec} }}" for name, spec in _BASE_CHAINS.items()]
    decls.append(f"add chain {t} services")
    decls += [f"add map {t} {name} {{ {spec} }}" for name, spec in _MAPS.items()]
    decls += [f"add set {t} {name} {{ {spec} }}" for name, spec in _SETS.items()]
    where = (f"ip daddr {{ {', '.join(node_addresses)} }}" if node_addresses
             else "fib daddr type local ip daddr != 127.0.0.0/8")
    body = [
        f"add rule {t} prerouting jump services",
        f"add rule {t} output jump services",
        f"add rule {t} postrouting meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade",
        f"add rule {t} filter-forward ip daddr . meta l4proto . th dport @no-endpoints reject",
        f"add rule {t} filter-output ip daddr . meta l4proto . th dport @no-endpoints reject",
        f"add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services {where} meta l4proto . th dport vmap @service-nodeports",
    ]
    elements: list[str] = []
    for rule in rules:
        d, r, e = _port_lines(rule, t)
        decls += d
        body += r
        elements += e
    wanted_chains = _declared(decls, "chain")
    wanted_sets = _declared(decls, "set")
    head = [f"add table {t}", f"flush table {t}"]
    head += [f"flush map {t} {name}" for name in sorted(existing.maps & set(_MAPS))]
    head += [f"flush set {t} {name}" for name in sorted(existing.sets & set(_SETS))]
    head += [f"delete chain {t} {name}" for name in sorted(existing.chains - wanted_chains)]
    head += [f"delete set {t} {name}" for name in sorted(existing.sets - wanted_sets)]
    head += [f"delete map {t} {name}" for name in sorted(existing.maps - set(_MAPS))]
    return "\n".join([*head, *decls, *body, *elements]) + "\n"


def parse_state(listing: str) -> TableState:
    """The names in ``nft -j list table ip shoal`` output."""
    items = json.loads(listing).get("nftables", [])
    chains, sets, maps = set(), set(), set()
    for item in items:
        if "chain" in item:
            chains.add(item["chain"]["name"])
        elif "set" in item:
            sets.add(item["set"]["name"])
        elif "map" in item:
            maps.add(item["map"]["name"])
    return TableState(frozenset(chains), frozenset(sets), frozenset(maps), exists=True)


class NftServiceTable:
    """Applies the node's service table with ``nft``. ``command_prefix`` runs the tools elsewhere
    (``("nsenter", "--net=/run/netns/x")``); ``bridge_netfilter`` turns on conntrack for bridged
    replies, which pod-to-service traffic on one bridge needs."""

    def __init__(self, *, node_addresses: Sequence[str] = (), command_prefix: Sequence[str] = (),
                 bridge_netfilter: bool = True) -> None:
        bad = [a for a in node_addresses if not _ipv4(a)]
        if bad:
            raise ServiceTableError(f"node addresses {bad} are not IPv4 addresses like 192.0.2.17")
        self.node_addresses = tuple(node_addresses)
        self._prefix = tuple(command_prefix)
        self._bridge_netfilter = bridge_netfilter

    def _run(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_tool(self._prefix, argv, stdin, ServiceTableError)

    def state(self) -> TableState:
        done = self._run("nft", "-j", "list", "table", FAMILY, TABLE)
        if done.returncode != 0:
            if "No such file" in done.stderr:
                return TableState()
            raise ServiceTableError(f"nft list table {FAMILY} {TABLE} failed: {done.stderr.strip()}")
        return parse_state(done.stdout)

    def sync(self, services: Iterable[Service], endpoints: Iterable[Endpoints]) -> list[str]:
        """Make the table match ``services``/``endpoints`` in one transaction; returns the problems
        (Services left out, with the reason). Running it twice changes nothing the second time."""
        if self._bridge_netfilter:
            done = self._run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
            if done.returncode != 0:
                raise ServiceTableError("cannot enable net.bridge.bridge-nf-call-iptables "
                                        f"({done.stderr.strip()}); run `modprobe br_netfilter`")
        rules, problems = service_rules(services, endpoints)
        script = render(rules, self.state(), self.node_addresses)
        done = self._run("nft", "-f", "-", stdin=script)
        if done.returncode != 0:
            raise ServiceTableError(f"nft rejected the service table: {done.stderr.strip()}")
        return problems

    def remove(self) -> None:
        """Delete the whole table (and with it every service rule); nothing if it is not there."""
        if self.state().exists:
            done = self._run("nft", "delete", "table", FAMILY, TABLE)
            if done.returncode != 0:
                raise ServiceTableError(f"nft delete table {FAMILY} {TABLE} failed: {done.stderr.strip()}")
