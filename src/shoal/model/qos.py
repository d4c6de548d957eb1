"""A pod's QoS class by Kubernetes' rules (Guaranteed, Burstable, BestEffort), from the requests and
limits of its containers, init containers included; only cpu and memory count, quantities compare
by value ("1" equals "1000m"), and a limit without a request implies an equal request. Used by the
API (admission sets ``status.qosClass``) and by the agent (status, eviction order). Pure.
"""

from __future__ import annotations

from enum import StrEnum

from shoal.model.pod import Container, PodSpec
from shoal.model.quantity import QuantityError, parse_resource

__all__ = ["QosClass", "effective_requests", "qos_class"]

_QOS_RESOURCES = ("cpu", "memory")


class QosClass(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


def _amount(resource: str, value: str | int | float) -> int | str:
    try:
        return parse_resource(resource, value)
    except QuantityError:  # the server validates quantities; compare what it let through as written
        return str(value)


def effective_requests(c: Container) -> dict[str, int | str]:
    """The container's cpu/memory requests, where a limit without a request implies an equal request."""
    out: dict[str, int | str] = {}
    for resource in _QOS_RESOURCES:
        value = c.resources.requests.get(resource, c.resources.limits.get(resource))
        if value is not None and _amount(resource, value) != 0:
            out[resource] = _amount(resource, value)
    return out


def qos_class(spec: PodSpec) -> QosClass:
    """Kubernetes' QoS class: BestEffort when no container (init containers included) requests or
    limits cpu or memory; Guaranteed when every container limits both and its requests (given or
    implied by the limits) equal the limits; Burstable otherwise."""
    containers = [*spec.init_containers, *spec.containers]
    guaranteed, any_set = True, False
    for c in containers:
        requests = effective_requests(c)
        limits = {r: _amount(r, v) for r, v in c.resources.limits.items() if r in _QOS_RESOURCES}
        limits = {r: v for r, v in limits.items() if v != 0}
        any_set = any_set or bool(requests) or bool(limits)
        if set(limits) != set(_QOS_RESOURCES) or requests != limits:
            guaranteed = False
    if not any_set:
        return QosClass.BEST_EFFORT
    return QosClass.GUARANTEED if guaranteed else QosClass.BURSTABLE
