"""The Service kind: a stable name and virtual IP in front of pods chosen by labels."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import ObjectMeta


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"


class ServicePort(Spec, frozen=True, kw_only=True):
    port: int
    name: str = ""
    target_port: int | str | None = None
    node_port: int = 0
    protocol: str = "TCP"


class LoadBalancing(Spec, frozen=True, kw_only=True):
    policy: str = "RoundRobin"  # RoundRobin | Weighted
    weight_label: str = ""


class ServiceSpec(Spec, frozen=True, kw_only=True):
    type: ServiceType = ServiceType.CLUSTER_IP
    selector: dict[str, str] = msgspec.field(default_factory=dict)
    ports: list[ServicePort] = msgspec.field(default_factory=list)
    cluster_ip: str = msgspec.field(default="", name="clusterIP")
    session_affinity: str = "None"  # None | ClientIP
    load_balancing: LoadBalancing | None = None


class ServiceStatus(Spec, frozen=True, kw_only=True):
    pass


class Service(Object, frozen=True, kw_only=True, tag="Service"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: ServiceSpec = msgspec.field(default_factory=ServiceSpec)
    status: ServiceStatus = msgspec.field(default_factory=ServiceStatus)
