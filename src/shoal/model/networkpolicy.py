"""The NetworkPolicy kind: which peers may reach a set of pods (ingress) and which they may reach
(egress), by pod and namespace labels, IP blocks and ports — Kubernetes' networking.k8s.io/v1 shape.

Shapes and their own checks only: each part checks itself when decoded (``__post_init__``), so a
bad port, protocol, CIDR or selector is refused with the path of the part and the fix. How a policy
becomes packet filters is ``shoal.net.policy``'s business, not the model's.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import LabelSelector, ObjectMeta
from shoal.model.selector import SelectorError, from_label_selector

_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class PolicyType(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


def _selector_problem(field: str, selector: LabelSelector | None) -> str | None:
    if selector is None:
        return None
    for i, expr in enumerate(selector.match_expressions):
        where = f"{field}.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn") and not expr.values:
            return f"{where}: operator {expr.operator} needs at least one value"
        if expr.operator in ("Exists", "DoesNotExist") and expr.values:
            return f"{where}: operator {expr.operator} takes no values; remove values"
    try:
        from_label_selector(selector)
    except SelectorError as exc:
        return f"{field}: {exc}"
    return None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


class IPBlock(Spec, frozen=True, kw_only=True):
    """Addresses in ``cidr`` but in none of ``except``."""

    cidr: str
    except_: list[str] = msgspec.field(default_factory=list, name="except")

    def __post_init__(self) -> None:
        net = _network(self.cidr)
        if net is None:
            raise ValueError(f'cidr "{self.cidr}" is not a CIDR; write it like 10.77.0.0/16 or 192.0.2.7/32')
        for i, text in enumerate(self.except_):
            sub = _network(text)
            if sub is None:
                raise ValueError(f'except[{i}] "{text}" is not a CIDR; write it like 10.77.3.0/24')
            if sub.version != net.version or not sub.subnet_of(net):  # type: ignore[arg-type]
                raise ValueError(f'except[{i}] "{text}" is not inside cidr {self.cidr}; '
                                 "an exception must be a part of the block")


class NetworkPolicyPeer(Spec, frozen=True, kw_only=True):
    """Pods (by pod labels, in namespaces chosen by namespace labels) or an IP block."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def __post_init__(self) -> None:
        if self.ip_block is not None and (self.pod_selector is not None or self.namespace_selector is not None):
            raise ValueError("ipBlock cannot be combined with podSelector or namespaceSelector; "
                             "make them two peers")
        if self.ip_block is None and self.pod_selector is None and self.namespace_selector is None:
            raise ValueError("give podSelector, namespaceSelector or ipBlock (podSelector: {} means every pod "
                             "of the policy's namespace)")
        problem = (_selector_problem("podSelector", self.pod_selector)
                   or _selector_problem("namespaceSelector", self.namespace_selector))
        if problem:
            raise ValueError(problem)


class NetworkPolicyPort(Spec, frozen=True, kw_only=True):
    """A port (number or a container port's name) or a range ``port``-``endPort``; no port: all of
    the protocol's ports."""

    protocol: Protocol = Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.port, int) and not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a port; use 1-65535")
        if isinstance(self.port, str):
            if self.port.isdigit():
                raise ValueError(f'port "{self.port}" is a string; write the number without quotes: {self.port}')
            if len(self.port) > 15 or not _PORT_NAME.match(self.port):
                raise ValueError(f'port "{self.port}" is not a port name; use a container port\'s name: '
                                 'at most 15 lower-case letters, digits and "-"')
        if self.end_port is not None:
            if not isinstance(self.port, int):
                raise ValueError("endPort needs a numeric port to start the range; e.g. port: 32000, endPort: 32768")
            if not self.port <= self.end_port <= 65535:
                raise ValueError(f"endPort {self.end_port} must be between port {self.port} and 65535")


class NetworkPolicyIngressRule(Spec, frozen=True, kw_only=True):
    """Traffic from any of ``from`` (none: from anywhere) to any of ``ports`` (none: every port)."""

    from_: list[NetworkPolicyPeer] = msgspec.field(default_factory=list, name="from")
    ports: list[NetworkPolicyPort] = msgspec.field(default_factory=list)


class NetworkPolicyEgressRule(Spec, frozen=True, kw_only=True):
    """Traffic to any of ``to`` (none: anywhere) on any of ``ports`` (none: every port)."""

    to: list[NetworkPolicyPeer] = msgspec.field(default_factory=list)
    ports: list[NetworkPolicyPort] = msgspec.field(default_factory=list)


class NetworkPolicySpec(Spec, frozen=True, kw_only=True):
    """``podSelector`` picks the pods of the policy's namespace it applies to ({}: all of them).
    ``policyTypes`` defaults to Ingress, plus Egress when there are egress rules."""

    pod_selector: LabelSelector
    policy_types: list[PolicyType] = msgspec.field(default_factory=list)
    ingress: list[NetworkPolicyIngressRule] = msgspec.field(default_factory=list)
    egress: list[NetworkPolicyEgressRule] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        problem = _selector_problem("podSelector", self.pod_selector)
        if problem:
            raise ValueError(problem)
        if len(set(self.policy_types)) != len(self.policy_types):
            raise ValueError("policyTypes: list each of Ingress and Egress at most once")

    def types(self) -> frozenset[PolicyType]:
        """The directions this policy isolates (Kubernetes' defaulting when ``policyTypes`` is empty)."""
        if self.policy_types:
            return frozenset(self.policy_types)
        return frozenset({PolicyType.INGRESS, *([PolicyType.EGRESS] if self.egress else [])})


class NetworkPolicy(Object, frozen=True, kw_only=True, tag="NetworkPolicy"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: NetworkPolicySpec
