"""The endpoints controller: one Endpoints object per Service with a selector or registrations, same name.

``endpoints_for(svc, pods, node_phases, existing)`` is pure. A pod matching the selector with a
pod IP is an address; it is ready — in ``addresses`` — only when its Ready condition is True,
it is not being deleted and its node is Online in the cache; otherwise it is in
``notReadyAddresses`` and receives no traffic. Finished pods are left out. A Service port's
``targetPort`` is a number, or the name of a container port (a pod without that port does not
serve it); addresses sharing the same resolved ports form one subset. Weighted Services give each
address the integer value of the pod label ``loadBalancing.weightLabel`` (0-1000, default 1).
Live EndpointRegistrations naming the Service (same namespace) are ready addresses too (target
kind EndpointRegistration, their ``weight`` or 1): their ``port`` serves the Service port whose
target it is, or the Service's only port; their named ``ports`` serve the Service ports of that
name. A registration being deleted or past its ``status.expiresAt`` is left out (the
registrations controller deletes it). A Service without a selector gets Endpoints only from
registrations, and Endpoints its user wrote (not owned by the Service) are left alone.
The object is written only when its content changes. It never reads the store.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import msgspec

from shoal.controllers.actions import (
    Action,
    Actions,
    Create,
    Delete,
    EmitEvent,
    EventType,
    Key,
    Result,
    Update,
    parse_time,
    ref_of,
)
from shoal.controllers.cache import Cache
from shoal.controllers.runner import Enqueue, KeyMapper, no_trigger
from shoal.model import (
    EndpointRegistration,
    Node,
    NodePhase,
    Object,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodPhase,
    Service,
    condition,
)
from shoal.model.endpoints import (
    DEFAULT_WEIGHT,
    MAX_WEIGHT,
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    EndpointTargetRef,
)
from shoal.model.service import ServicePort

WEIGHTED = "Weighted"
REASON_BAD_WEIGHT = "InvalidEndpointWeight"
REASON_BAD_REGISTRATION = "InvalidEndpointRegistration"
REASON_NOT_MANAGED = "EndpointsNotManaged"
REGISTRATION = "EndpointRegistration"
EXPIRY_SLACK = 0.05  # seconds past a registration's expiresAt before looking again
_FINISHED = (PodPhase.SUCCEEDED, PodPhase.FAILED)


def selects(svc: Service, pod: Pod) -> bool:
    """True when ``svc``'s selector (non-empty, equality only) matches ``pod``'s labels."""
    selector = svc.spec.selector
    if not selector or svc.metadata.namespace != pod.metadata.namespace:
        return False
    labels = pod.metadata.labels
    return all(labels.get(k) == v for k, v in selector.items())


def is_endpoint_ready(pod: Pod, node_phases: Mapping[str, NodePhase]) -> bool:
    ready = condition(pod.status.conditions, "Ready")
    return (ready is not None and ready.status == "True" and not pod.metadata.deletion_timestamp
            and pod.status.phase == PodPhase.RUNNING and node_phases.get(pod.spec.node_name) == NodePhase.ONLINE)


def _target(port: ServicePort, pod: Pod) -> int | None:
    """The pod's port number for a Service port, or None when the pod does not expose it."""
    target = port.target_port if port.target_port not in (None, "", 0) else port.port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    for container in pod.spec.containers:
        for exposed in container.ports:
            if exposed.name == target and exposed.protocol == port.protocol:
                return exposed.container_port
    return None


def _weight(svc: Service, pod: Pod) -> tuple[int, str]:
    """The address weight and, when the label is unusable, a message saying why."""
    balancing = svc.spec.load_balancing
    if balancing is None or balancing.policy != WEIGHTED or not balancing.weight_label:
        return DEFAULT_WEIGHT, ""
    value = pod.metadata.labels.get(balancing.weight_label)
    if value is None:
        return DEFAULT_WEIGHT, ""
    if value.isdigit() and int(value) <= MAX_WEIGHT:
        return int(value), ""
    return DEFAULT_WEIGHT, (f'pod {pod.metadata.name}: label {balancing.weight_label}="{value}" is not a weight; '
                            f"use a whole number 0-{MAX_WEIGHT} (using {DEFAULT_WEIGHT})")


def _ip_order(address: EndpointAddress) -> tuple[int, int | str]:
    try:
        parsed = ipaddress.ip_address(address.ip)
    except ValueError:
        return 2, address.ip
    return parsed.version, int(parsed)


def _ports_order(ports: tuple[EndpointPort, ...]) -> list[tuple[str, str, int]]:
    return [(p.name, p.protocol, p.port) for p in ports]


def is_registration_live(reg: EndpointRegistration, now: datetime | None) -> bool:
    """Not being deleted and, when the registrations controller has stamped it, not past ``expiresAt``."""
    if reg.metadata.deletion_timestamp:
        return False
    expires = parse_time(reg.status.expires_at)
    return now is None or expires is None or expires > now


def _registration_port(port: ServicePort, svc: Service, reg: EndpointRegistration) -> int | None:
    """The instance's port for a Service port, or None when the registration does not serve it."""
    spec = reg.spec
    only = len(svc.spec.ports) == 1
    if spec.port is not None:
        wanted = port.target_port if port.target_port not in (None, "", 0) else port.port
        target = int(wanted) if isinstance(wanted, int) or wanted.isdigit() else None
        return spec.port if target == spec.port or only else None
    for exposed in spec.ports:
        if exposed.protocol == port.protocol and (exposed.name == port.name or (only and not exposed.name)):
            return exposed.port
    return None


def _registration_ports(svc: Service, reg: EndpointRegistration) -> tuple[tuple[EndpointPort, ...], str]:
    """The Endpoints ports a registration serves and, when it serves none of the Service's, why."""
    if not svc.spec.ports:
        own = [EndpointPort(name=p.name, port=p.port, protocol=str(p.protocol)) for p in reg.spec.instance_ports()]
        return tuple(sorted(own, key=lambda e: (e.name, e.protocol, e.port))), ""
    resolved = [(p, _registration_port(p, svc, reg)) for p in svc.spec.ports]
    ports = tuple(sorted((EndpointPort(name=p.name, port=n, protocol=p.protocol) for p, n in resolved if n is not None),
                         key=lambda e: (e.name, e.protocol, e.port)))
    if ports:
        return ports, ""
    wanted = ", ".join(f"{p.name or '(unnamed)'} {p.port}/{p.protocol}" for p in svc.spec.ports)
    given = ", ".join(f"{p.name or '(unnamed)'} {p.port}/{p.protocol}" for p in reg.spec.instance_ports())
    return (), (f"registration {reg.metadata.name}: its ports ({given}) serve none of Service "
                f"{svc.metadata.name}'s ports ({wanted}); give ports with the Service ports' names, "
                "e.g. ports: [{name: http, port: 8080}]")


def desired_subsets(svc: Service, pods: Iterable[Pod], node_phases: Mapping[str, NodePhase],
                    registrations: Iterable[EndpointRegistration] = (),
                    now: datetime | None = None) -> tuple[list[EndpointSubset], list[str]]:
    """The subsets for ``svc`` and the weight and port problems found on the way."""
    groups: dict[tuple[EndpointPort, ...], tuple[list[EndpointAddress], list[EndpointAddress]]] = {}
    problems: list[str] = []
    for reg in registrations:
        if reg.spec.service != svc.metadata.name or reg.metadata.namespace != svc.metadata.namespace:
            continue
        if not is_registration_live(reg, now):
            continue
        reg_ports, problem = _registration_ports(svc, reg)
        if problem:
            problems.append(problem)
            continue
        ref = EndpointTargetRef(kind=REGISTRATION, name=reg.metadata.name, namespace=reg.metadata.namespace,
                                uid=reg.metadata.uid)
        weight = DEFAULT_WEIGHT if reg.spec.weight is None else reg.spec.weight
        groups.setdefault(reg_ports, ([], []))[0].append(EndpointAddress(ip=reg.spec.address, target_ref=ref,
                                                                         weight=weight))
    for pod in pods:
        if not selects(svc, pod) or not pod.status.pod_ip or pod.status.phase in _FINISHED:
            continue
        resolved = [(p, _target(p, pod)) for p in svc.spec.ports]
        ports = tuple(sorted((EndpointPort(name=p.name, port=n, protocol=p.protocol)
                              for p, n in resolved if n is not None), key=lambda e: (e.name, e.protocol, e.port)))
        if svc.spec.ports and not ports:
            continue
        weight, problem = _weight(svc, pod)
        if problem:
            problems.append(problem)
        ref = EndpointTargetRef(name=pod.metadata.name, namespace=pod.metadata.namespace, uid=pod.metadata.uid)
        address = EndpointAddress(ip=pod.status.pod_ip, node_name=pod.spec.node_name, target_ref=ref, weight=weight)
        ready, not_ready = groups.setdefault(ports, ([], []))
        (ready if is_endpoint_ready(pod, node_phases) else not_ready).append(address)
    subsets = [EndpointSubset(addresses=sorted(ready, key=_ip_order), not_ready_addresses=sorted(nr, key=_ip_order),
                              ports=list(ports))
               for ports, (ready, nr) in sorted(groups.items(), key=lambda item: _ports_order(item[0]))]
    return subsets, problems


def _owner(svc: Service) -> OwnerReference:
    return OwnerReference(kind="Service", name=svc.metadata.name, uid=svc.metadata.uid, controller=True)


def _ours(eps: Endpoints, svc_name: str) -> bool:
    return any(r.controller and r.kind == "Service" and r.name == svc_name for r in eps.metadata.owner_references)


def _next_expiry(registrations: Sequence[EndpointRegistration], now: datetime | None) -> float | None:
    """Seconds until the first live registration's ``expiresAt`` (then it leaves the addresses)."""
    if now is None:
        return None
    moments = [m for r in registrations if is_registration_live(r, now)
               and (m := parse_time(r.status.expires_at)) is not None]
    return (min(moments) - now).total_seconds() + EXPIRY_SLACK if moments else None


def endpoints_for(svc: Service, pods: Sequence[Pod], node_phases: Mapping[str, NodePhase],
                  existing: Endpoints | None, registrations: Sequence[EndpointRegistration] = (),
                  now: datetime | None = None) -> Actions:
    """Create, update or leave the Endpoints of ``svc`` so it lists exactly its pods' and live
    registrations' addresses."""
    mine = [r for r in registrations
            if r.spec.service == svc.metadata.name and r.metadata.namespace == svc.metadata.namespace]
    if not svc.spec.selector:
        if existing is not None and not _ours(existing, svc.metadata.name):
            if not mine:
                return Actions()  # Endpoints its user writes
            return Actions((EmitEvent(ref_of(svc), REASON_NOT_MANAGED, (
                f"Endpoints {svc.metadata.name} were written by a user, so registrations "
                f"({', '.join(sorted(r.metadata.name for r in mine))}) are not added to them; delete those "
                "Endpoints to let shoal manage them"), EventType.WARNING),))
        if existing is None and not any(is_registration_live(r, now) for r in mine):
            return Actions()
    subsets, problems = desired_subsets(svc, pods, node_phases, mine, now)
    events: list[Action] = [EmitEvent(ref_of(svc), REASON_BAD_REGISTRATION if p.startswith("registration ")
                                      else REASON_BAD_WEIGHT, p, EventType.WARNING) for p in problems]
    requeue = Result(_next_expiry(mine, now))
    labels = dict(svc.metadata.labels)
    owners = [_owner(svc)]
    if existing is None:
        meta = ObjectMeta(name=svc.metadata.name, namespace=svc.metadata.namespace, labels=labels,
                          owner_references=owners)
        return Actions((Create(Endpoints(metadata=meta, subsets=subsets)), *events), requeue)
    same_meta = existing.metadata.labels == labels and existing.metadata.owner_references == owners
    if existing.subsets == subsets and same_meta:
        return Actions(tuple(events), requeue)
    meta = msgspec.structs.replace(existing.metadata, labels=labels, owner_references=owners)
    return Actions((Update(msgspec.structs.replace(existing, metadata=meta, subsets=subsets)), *events), requeue)


class EndpointsController:
    """Adapts ``endpoints_for`` to the runner: keys are Services; pods, nodes and Endpoints map to them."""

    name = "endpoints"
    kind = "Service"

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"Service": _service_key, "Pod": _services_of_pod, "Node": _services_on_node,
                "Endpoints": _service_key, REGISTRATION: _service_of_registration}

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        _, namespace, name = key
        svc = cache.get(("Service", namespace, name))
        existing = cache.get(("Endpoints", namespace, name))
        eps = existing if isinstance(existing, Endpoints) else None
        if not isinstance(svc, Service):
            if eps is not None and _ours(eps, name):
                return Actions((Delete("Endpoints", namespace, name, eps.metadata.resource_version),))
            return Actions()
        pods = [p for p in cache.objects("Pod", namespace) if isinstance(p, Pod) and selects(svc, p)]
        phases = {node: phase for node in {p.spec.node_name for p in pods}
                  if (phase := _node_phase(cache, node)) is not None}
        registrations = [r for r in cache.objects(REGISTRATION, namespace)
                         if isinstance(r, EndpointRegistration) and r.spec.service == name]
        return endpoints_for(svc, pods, phases, eps, registrations, now)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)


def _node_phase(cache: Cache, name: str) -> NodePhase | None:
    node = cache.get(("Node", "", name))
    return node.status.phase if isinstance(node, Node) else None


def _service_key(obj: Object, cache: Cache) -> list[Key]:
    meta = getattr(obj, "metadata", None)
    return [("Service", meta.namespace, meta.name)] if isinstance(meta, ObjectMeta) else []


def _service_of_registration(obj: Object, cache: Cache) -> list[Key]:
    if not isinstance(obj, EndpointRegistration):
        return []
    return [("Service", obj.metadata.namespace, obj.spec.service)]


def _services_of_pod(obj: Object, cache: Cache) -> list[Key]:
    if not isinstance(obj, Pod):
        return []
    return [("Service", obj.metadata.namespace, s.metadata.name)
            for s in cache.objects("Service", obj.metadata.namespace) if isinstance(s, Service) and selects(s, obj)]


def _services_on_node(obj: Object, cache: Cache) -> list[Key]:
    name = getattr(getattr(obj, "metadata", None), "name", "")
    keys: set[Key] = set()
    for pod in cache.pods_on_node(name):
        keys.update(_services_of_pod(pod, cache))
    return sorted(keys)
