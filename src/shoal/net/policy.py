"""NetworkPolicies on a node: every policy that selects a pod of this node as one nftables table,
``ip shoal-policy``, rebuilt in a single transaction.

``compile_policies`` (pure) turns NetworkPolicies, the pods of all nodes and the namespaces into one
``PodRules`` per (local pod, direction) that some policy isolates; ``render`` (pure) turns those into
an ``nft -f`` script that replaces the whole table atomically. Layout:

```
forward (filter): ct established,related accept · ip saddr vmap @egress · ip daddr vmap @ingress
input   (filter): ct established,related accept · ip saddr vmap @egress   (pod → this node)
in-<ns>/<pod>:  [ip saddr {peers}] [meta l4proto P th dport {ports}] return …  drop
eg-<ns>/<pod>:  [ip daddr {peers}] [meta l4proto P th dport {ports}] return …  drop
```

Kubernetes' semantics: a pod selected by no policy of a direction is not filtered in it; a selected
pod admits the union of its policies' rules. DNS (port 53) is not allowed implicitly: an egress policy
must allow it (``ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]``) or names stop
resolving. Traffic from the node to its own pods (probes) is never filtered. Named ports resolve
against the destination pod's container ports. Namespaces carry the implicit label
``kubernetes.io/metadata.name``. IPv4 only, like the service table. ``NftPolicyTable`` applies the
script with ``nft``; it touches nothing outside its own table and imports nothing of the server.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shoal.model.meta import LabelSelector
from shoal.model.namespace import Namespace
from shoal.model.networkpolicy import NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, PolicyType
from shoal.model.pod import Pod, PodPhase
from shoal.model.selector import from_label_selector
from shoal.net.nft import run_tool
from shoal.net.protocol import NetworkError

__all__ = ["FAMILY", "NAMESPACE_NAME_LABEL", "TABLE", "Match", "NftPolicyTable", "PodRules", "PolicyTableError",
           "compile_policies", "render"]

TABLE = "shoal-policy"
FAMILY = "ip"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_NAME_OK = re.compile(r"^[a-z][a-z0-9./_-]{0,199}$")


class PolicyTableError(NetworkError):
    pass


@dataclass(frozen=True, slots=True)
class Match:
    """One allowed kind of traffic: from/to ``peers`` (None: anywhere) minus ``excepts``, on
    ``protocol`` (None: any) ``ports`` (empty: all). ``targets`` instead names exact
    ``(ip, protocol, port)`` triples (egress to named ports)."""

    peers: tuple[str, ...] | None = None
    excepts: tuple[str, ...] = ()
    protocol: str | None = None
    ports: tuple[str, ...] = ()
    targets: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class PodRules:
    """What one local pod admits in one direction (``ingress``/``egress``); nothing else passes."""

    key: str  # namespace/name
    ip: str
    direction: str
    matches: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class _Pod:
    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, containerPort)
    local: bool


def _ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def _pods(pods: Iterable[Pod], node_name: str) -> list[_Pod]:
    out = []
    for pod in pods:
        if (not _ipv4(pod.status.pod_ip) or pod.spec.host_network
                or pod.status.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)):
            continue
        ports = tuple((p.name, p.protocol, p.container_port) for c in pod.spec.containers for p in c.ports if p.name)
        out.append(_Pod(pod.metadata.namespace, pod.metadata.name, pod.status.pod_ip, pod.metadata.labels, ports,
                        pod.spec.node_name == node_name))
    return sorted(out, key=lambda p: (p.namespace, p.name))


def _matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    return from_label_selector(selector).matches(labels)


def _peer_pods(peer: NetworkPolicyPeer, policy_ns: str, pods: list[_Pod],
               ns_labels: Mapping[str, Mapping[str, str]]) -> list[_Pod]:
    def in_scope(pod: _Pod) -> bool:
        if peer.namespace_selector is None:
            return pod.namespace == policy_ns
        labels = {**ns_labels.get(pod.namespace, {}), NAMESPACE_NAME_LABEL: pod.namespace}
        return _matches(peer.namespace_selector, labels)

    chosen = peer.pod_selector or LabelSelector()
    return [p for p in pods if in_scope(p) and _matches(chosen, p.labels)]


def _numeric(ports: Sequence[NetworkPolicyPort], dest: _Pod | None) -> dict[str, list[str]]:
    """nft protocol → port expressions (``[]``: every port); named ports resolve against ``dest``."""
    out: dict[str, list[str]] = {}
    for port in ports:
        proto = port.protocol.value.lower()
        if port.port is None:
            out[proto] = []
        elif isinstance(port.port, int):
            text = f"{port.port}-{port.end_port}" if port.end_port and port.end_port > port.port else f"{port.port}"
            if out.get(proto) != []:
                out.setdefault(proto, []).append(text)
        elif dest is not None:
            for name, protocol, number in dest.ports:
                if name == port.port and protocol == port.protocol.value and out.get(proto) != []:
                    out.setdefault(proto, []).append(str(number))
    return {proto: sorted(set(texts), key=lambda t: int(t.split("-")[0])) for proto, texts in out.items()}


def _port_matches(peers: tuple[str, ...] | None, excepts: tuple[str, ...],
                  ports: dict[str, list[str]], any_port: bool) -> list[Match]:
    if any_port:
        return [Match(peers, excepts)]
    return [Match(peers, excepts, proto, tuple(texts)) for proto, texts in sorted(ports.items())]


def _rule_matches(peers: Sequence[NetworkPolicyPeer], ports: Sequence[NetworkPolicyPort], policy: NetworkPolicy,
                  pod: _Pod, egress: bool, pods: list[_Pod], ns_labels: Mapping[str, Mapping[str, str]],
                  where: str, problems: list[str]) -> list[Match]:
    any_port = not ports
    named = [p for p in ports if isinstance(p.port, str)]
    fixed = [p for p in ports if not isinstance(p.port, str)]
    # ingress: named ports are the selected pod's own; egress: each destination pod's
    local_ports = _numeric(ports if not egress else fixed, None if egress else pod)
    if not any_port and not local_ports and not (egress and named):
        return []  # only named ports, none of which this pod has
    out: list[Match] = []
    pod_ips: list[str] = []
    for i, peer in enumerate(peers):
        if peer.ip_block is not None:
            block = peer.ip_block
            if ipaddress.ip_network(block.cidr, strict=False).version != 4:
                problems.append(f"{where}[{i}].ipBlock: {block.cidr} is IPv6; only IPv4 is filtered, so it admits "
                                "nothing")
                continue
            cidr = str(ipaddress.ip_network(block.cidr, strict=False))
            excepts = tuple(str(ipaddress.ip_network(e, strict=False)) for e in block.except_)
            if any_port or local_ports:
                out += _port_matches((cidr,), excepts, local_ports, any_port)
        else:
            pod_ips += [p.ip for p in _peer_pods(peer, policy.metadata.namespace, pods, ns_labels)]
    peer_ips = tuple(sorted(set(pod_ips), key=ipaddress.IPv4Address)) if peers else None
    if peer_ips != ():
        if any_port or local_ports:
            out += _port_matches(peer_ips, (), local_ports, any_port)
        if egress and named:
            dests = [p for p in pods if peer_ips is None or p.ip in peer_ips]
            targets = sorted({(d.ip, proto, int(text)) for d in dests
                              for proto, texts in _numeric(named, d).items() for text in texts},
                             key=lambda t: (ipaddress.IPv4Address(t[0]), t[1], t[2]))
            if targets:
                out.append(Match(targets=tuple(targets)))
    return out


def compile_policies(policies: Iterable[NetworkPolicy], pods: Iterable[Pod], namespaces: Iterable[Namespace],
                     node_name: str) -> tuple[list[PodRules], list[str]]:
    """The rules of every pod on ``node_name`` that a policy isolates, and problems (parts left out, why)."""
    all_pods = _pods(pods, node_name)
    ns_labels = {ns.metadata.name: ns.metadata.labels for ns in namespaces}
    ordered = sorted(policies, key=lambda p: (p.metadata.namespace, p.metadata.name))
    out: list[PodRules] = []
    problems: list[str] = []
    for pod in (p for p in all_pods if p.local):
        for direction, kind in (("ingress", PolicyType.INGRESS), ("egress", PolicyType.EGRESS)):
            isolated = False
            matches: list[Match] = []
            for policy in ordered:
                spec = policy.spec
                if (policy.metadata.namespace != pod.namespace or kind not in spec.types()
                        or not _matches(spec.pod_selector, pod.labels)):
                    continue
                isolated = True
                name = f"NetworkPolicy {policy.metadata.namespace}/{policy.metadata.name}"
                egress = kind == PolicyType.EGRESS
                parts = [(r.to, r.ports) for r in spec.egress] if egress else [(r.from_, r.ports) for r in spec.ingress]
                for i, (peers, ports) in enumerate(parts):
                    where = f"{name}: spec.{direction}[{i}].{'to' if egress else 'from'}"
                    matches += _rule_matches(peers, ports, policy, pod, egress, all_pods, ns_labels, where, problems)
            if isolated:
                unique = tuple(dict.fromkeys(matches))
                out.append(PodRules(f"{pod.namespace}/{pod.name}", pod.ip, direction, unique))
    return out, sorted(set(problems))


def _ident(text: str) -> str:
    return text if _NAME_OK.match(text) else "h-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _chain(rules: PodRules) -> str:
    return _ident(f"{'in' if rules.direction == 'ingress' else 'eg'}-{rules.key}")


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _match_line(m: Match, peer: str) -> str:
    if m.targets:
        elements = ", ".join(f"{ip} . {proto} . {port}" for ip, proto, port in m.targets)
        return f"ip daddr . meta l4proto . th dport {{ {elements} }} return"
    parts: list[str] = []
    if m.peers is not None:
        parts.append(f"ip {peer} {_set(m.peers)}")
    if m.excepts:
        parts.append(f"ip {peer} != {_set(m.excepts)}")
    if m.protocol is not None:
        parts.append(f"meta l4proto {m.protocol}")
        if m.ports:
            parts.append(f"th dport {_set(m.ports)}")
    return " ".join([*parts, "return"])


def render(rules: Sequence[PodRules], table: str = TABLE) -> str:
    """The ``nft -f`` script that makes table ``ip <table>`` exactly ``rules``, in one transaction."""
    t = f"{FAMILY} {table}"
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}",
             f"add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}",
             f"add chain {t} input {{ type filter hook input priority filter; policy accept; }}",
             f"add map {t} ingress {{ type ipv4_addr : verdict; }}",
             f"add map {t} egress {{ type ipv4_addr : verdict; }}"]
    for pod in rules:
        lines.append(f"add chain {t} {_chain(pod)}")
    lines += [f"add rule {t} forward ct state established,related accept",
              f"add rule {t} forward ip saddr vmap @egress",
              f"add rule {t} forward ip daddr vmap @ingress",
              f"add rule {t} input ct state established,related accept",
              f"add rule {t} input ip saddr vmap @egress"]
    for pod in rules:
        chain = _chain(pod)
        peer = "saddr" if pod.direction == "ingress" else "daddr"
        lines += [f"add rule {t} {chain} {_match_line(m, peer)}" for m in pod.matches]
        lines.append(f"add rule {t} {chain} drop")
        lines.append(f"add element {t} {pod.direction} {{ {pod.ip} : jump {chain} }}")
    return "\n".join(lines) + "\n"


class NftPolicyTable:
    """Applies the node's policy table with ``nft``. ``command_prefix`` runs the tools elsewhere
    (``("nsenter", "--net=/run/netns/x")``); ``bridge_netfilter`` makes traffic between pods on one
    bridge pass the IPv4 forward hook, without which pods on the same node are not filtered."""

    def __init__(self, *, command_prefix: Sequence[str] = (), table: str = TABLE,
                 bridge_netfilter: bool = True) -> None:
        if not _NAME_OK.match(table):
            raise PolicyTableError(f'table name "{table}" must be lower-case letters, digits, "-" or "_"')
        self.table = table
        self._prefix = tuple(command_prefix)
        self._bridge_netfilter = bridge_netfilter

    def _run(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_tool(self._prefix, argv, stdin, PolicyTableError)

    def sync(self, policies: Iterable[NetworkPolicy], pods: Iterable[Pod], namespaces: Iterable[Namespace],
             node_name: str) -> list[str]:
        """Make the table enforce ``policies`` for the pods of ``node_name`` in one transaction (no table
        when no pod of the node is isolated); returns the problems (parts of policies that admit
        nothing, why). Running it twice changes nothing."""
        if self._bridge_netfilter:
            done = self._run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
            if done.returncode != 0:
                raise PolicyTableError("cannot enable net.bridge.bridge-nf-call-iptables "
                                       f"({done.stderr.strip()}); run `modprobe br_netfilter`")
        rules, problems = compile_policies(policies, pods, namespaces, node_name)
        if not rules:  # no pod of this node is isolated: no table, no per-packet cost
            self.remove()
            return problems
        done = self._run("nft", "-f", "-", stdin=render(rules, self.table))
        if done.returncode != 0:
            raise PolicyTableError(f"nft rejected the policy table: {done.stderr.strip()}")
        return problems

    def remove(self) -> None:
        """Delete the whole table (every pod is open again); nothing if it is not there."""
        done = self._run("nft", "delete", "table", FAMILY, self.table)
        if done.returncode != 0 and "No such file" not in done.stderr:
            raise PolicyTableError(f"nft delete table {FAMILY} {self.table} failed: {done.stderr.strip()}")
