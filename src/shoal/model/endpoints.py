"""The Endpoints kind: the addresses behind a Service, named like it, in Kubernetes' shape.

``subsets[]`` group addresses that expose the same ports: ready ``addresses[]`` receive traffic,
``notReadyAddresses[]`` do not. shoal adds ``weight`` per address for Weighted load balancing
(from the pod label the Service names in ``loadBalancing.weightLabel``; 1 when absent).
Written by the endpoints controller, read by every node's service proxy. Shapes only: which pods
become which addresses is the controller's business, not the model's.
"""

from __future__ import annotations

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import ObjectMeta

DEFAULT_WEIGHT = 1
MAX_WEIGHT = 1000


class EndpointTargetRef(Spec, frozen=True, kw_only=True, omit_defaults=False):
    """The object an address belongs to (a Pod)."""

    kind: str = "Pod"
    name: str = ""
    namespace: str = ""
    uid: str = ""


class EndpointAddress(Spec, frozen=True, kw_only=True):
    ip: str
    node_name: str = ""
    target_ref: EndpointTargetRef | None = None
    weight: int = DEFAULT_WEIGHT


class EndpointPort(Spec, frozen=True, kw_only=True):
    """A port the addresses of a subset listen on; ``name`` is the Service port's name."""

    port: int
    name: str = ""
    protocol: str = "TCP"


class EndpointSubset(Spec, frozen=True, kw_only=True):
    addresses: list[EndpointAddress] = msgspec.field(default_factory=list)
    not_ready_addresses: list[EndpointAddress] = msgspec.field(default_factory=list)
    ports: list[EndpointPort] = msgspec.field(default_factory=list)


class Endpoints(Object, frozen=True, kw_only=True, tag="Endpoints"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    subsets: list[EndpointSubset] = msgspec.field(default_factory=list)
