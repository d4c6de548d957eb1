"""A pod compiled into what placement needs: requests, ports, images, constraints and policy.

Owns parsing pods (quantities, tolerations, affinity terms, edge hints) into frozen values, and
the equivalence-class key: pods stamped from one template share one ``PodClass``, so the batch
path evaluates static filters and scores once per class. Must not look at nodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from shoal.model.codec import encode
from shoal.model.meta import LabelSelectorRequirement
from shoal.model.node import LABEL_ARCH
from shoal.model.pod import Container, Pod, PodSpec
from shoal.model.quantity import QuantityError, parse_resource
from shoal.scheduler.policies import Policy, PolicyName, UnknownPolicyError, lookup_policy

DEPLOYMENT_OWNER_KINDS = frozenset({"Deployment", "ReplicaSet"})

PodKey = tuple[str, str]
Expr = tuple[str, str, frozenset[str]]  # (label key, In|NotIn|Exists|DoesNotExist, values)


@dataclass(frozen=True, slots=True)
class TolerationView:
    key: str
    operator: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class PodClass:
    """Everything about a pod that decides where it may go and how nodes score for it."""

    requests: Mapping[str, int]
    host_ports: frozenset[tuple[str, int]]
    images: frozenset[str]
    runtime: str
    arch: str | None
    selector: tuple[tuple[str, str], ...]
    required_terms: tuple[tuple[Expr, ...], ...]
    preferred_terms: tuple[tuple[int, tuple[Expr, ...]], ...]
    tolerations: tuple[TolerationView, ...]
    zone: str
    max_latency_ms: float | None
    min_battery_percent: float | None
    policy: Policy
    error: str = ""


@dataclass(frozen=True, slots=True)
class PodView:
    key: PodKey
    priority: int
    owner: str | None
    cls: PodClass


def pod_key(pod: Pod) -> PodKey:
    return (pod.metadata.namespace or "default", pod.metadata.name)


def owner_of(pod: Pod) -> tuple[str | None, bool]:
    """The pod's controlling owner id and whether it is a Deployment/ReplicaSet."""
    refs = pod.metadata.owner_references
    if not refs:
        return None, False
    ref = next((r for r in refs if r.controller), refs[0])
    ident = ref.uid or f"{ref.kind}/{pod.metadata.namespace or 'default'}/{ref.name}"
    return ident, ref.kind in DEPLOYMENT_OWNER_KINDS


def _container_requests(container: Container, where: str) -> dict[str, int]:
    res = container.resources
    out: dict[str, int] = {}
    for name in {*res.requests, *res.limits}:
        value = res.requests[name] if name in res.requests else res.limits[name]
        field = "requests" if name in res.requests else "limits"
        try:
            out[name] = parse_resource(name, value)
        except QuantityError as exc:
            raise QuantityError(f"{where}.resources.{field}.{name}: {exc}") from None
    return out


def pod_requests(spec: PodSpec) -> dict[str, int]:
    """Summed container requests (limits where no request), at least the largest init container's,
    plus 1 pod. Raises QuantityError naming the field on a bad quantity."""
    total: dict[str, int] = {}
    for i, container in enumerate(spec.containers):
        for name, amount in _container_requests(container, f"spec.containers[{i}]").items():
            total[name] = total.get(name, 0) + amount
    for i, container in enumerate(spec.init_containers):
        for name, amount in _container_requests(container, f"spec.initContainers[{i}]").items():
            total[name] = max(total.get(name, 0), amount)
    total = {name: amount for name, amount in total.items() if amount > 0}
    total["pods"] = 1
    return total


def host_ports(spec: PodSpec) -> frozenset[tuple[str, int]]:
    return frozenset((port.protocol or "TCP", port.host_port) for c in spec.containers
                     for port in c.ports if port.host_port)


def images(spec: PodSpec) -> frozenset[str]:
    return frozenset(c.image for c in spec.containers if c.image)


def _exprs(requirements: list[LabelSelectorRequirement]) -> tuple[Expr, ...]:
    return tuple((r.key, r.operator, frozenset(r.values)) for r in requirements)


def compile_class(spec: PodSpec, policy: Policy) -> PodClass:
    """Compile the placement-relevant parts of ``spec`` (no node is looked at)."""
    error = ""
    try:
        requests = pod_requests(spec)
    except QuantityError as exc:
        requests, error = {"pods": 1}, str(exc)
    selector = tuple(sorted((k, v) for k, v in spec.node_selector.items() if k != LABEL_ARCH))
    node_affinity = spec.affinity.node_affinity if spec.affinity else None
    required: tuple[tuple[Expr, ...], ...] = ()
    preferred: tuple[tuple[int, tuple[Expr, ...]], ...] = ()
    if node_affinity is not None:
        req = node_affinity.required_during_scheduling_ignored_during_execution
        if req is not None:
            required = tuple(_exprs(t.match_expressions) for t in req.node_selector_terms)
        preferred = tuple((p.weight, _exprs(p.preference.match_expressions))
                          for p in node_affinity.preferred_during_scheduling_ignored_during_execution)
    for term in (*required, *(t for _, t in preferred)):
        for key, op, _ in term:
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                error = error or (f'spec.affinity.nodeAffinity: operator "{op}" on "{key}" is not supported; '
                                  "use In, NotIn, Exists or DoesNotExist")
    edge = spec.edge
    return PodClass(
        requests=requests, host_ports=host_ports(spec), images=images(spec), runtime=str(spec.runtime),
        arch=spec.node_selector.get(LABEL_ARCH), selector=selector, required_terms=required,
        preferred_terms=preferred,
        tolerations=tuple(TolerationView(t.key, t.operator, t.value, t.effect) for t in spec.tolerations),
        zone=edge.zone if edge else "", max_latency_ms=edge.max_latency_ms if edge else None,
        min_battery_percent=edge.min_battery_percent if edge else None, policy=policy, error=error)


def resolve_policy(pod: Pod, default: Policy, group_sizes: Mapping[str, int]) -> tuple[Policy, str]:
    """The pod's own ``spec.schedulingPolicy``, else Spread for a multi-replica Deployment's pod,
    else the cluster default. Returns (policy, error message for an unknown pod policy)."""
    if pod.spec.scheduling_policy:
        try:
            return lookup_policy(pod.spec.scheduling_policy, "spec.schedulingPolicy"), ""
        except UnknownPolicyError as exc:
            return default, str(exc)
    owner, is_deployment = owner_of(pod)
    if owner is not None and is_deployment and group_sizes.get(owner, 0) > 1:
        return lookup_policy(PolicyName.SPREAD), ""
    return default, ""


class ClassCache:
    """Interns PodClasses by (encoded spec, policy) so one template compiles once per call."""

    def __init__(self) -> None:
        self._classes: dict[tuple[bytes, str, str], PodClass] = {}

    def view(self, pod: Pod, default: Policy, group_sizes: Mapping[str, int]) -> PodView:
        policy, error = resolve_policy(pod, default, group_sizes)
        spec_key = encode(pod.spec)
        key = (spec_key, policy.name, error)
        cls = self._classes.get(key)
        if cls is None:
            cls = compile_class(pod.spec, policy)
            if error and not cls.error:
                cls = dataclasses.replace(cls, error=error)
            self._classes[key] = cls
        owner, _ = owner_of(pod)
        return PodView(pod_key(pod), pod.spec.priority, owner, cls)

