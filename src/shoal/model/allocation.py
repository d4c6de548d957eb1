"""The NodeAllocation kind: the scheduler's ledger of what is committed to one node.

One object per node (named after it, cluster-scoped) lists the pods bound there and what each
holds: requests in canonical units (CPU millis, bytes, counts; ``pods`` is 1) and host ports.
The scheduler's committer writes it with compare-and-swap before it binds pods, so two
schedulers can never overcommit a node; the Node object itself is not used for that, because
heartbeats keep changing its version. Shapes only: the fit and clean-up rules live with the
committer, not here.
"""

from __future__ import annotations

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import ObjectMeta


class AllocatedPort(Spec, frozen=True, kw_only=True):
    protocol: str = "TCP"
    port: int


class PodAllocation(Spec, frozen=True, kw_only=True):
    """One pod committed to the node. ``resourceVersion`` is the pod's version the binding was
    made against: until the pod moves past it, the binding may still be in flight."""

    namespace: str
    name: str
    uid: str
    resource_version: str = ""
    requests: dict[str, int] = msgspec.field(default_factory=dict)
    host_ports: list[AllocatedPort] = msgspec.field(default_factory=list)


class NodeAllocationSpec(Spec, frozen=True, kw_only=True):
    pods: list[PodAllocation] = msgspec.field(default_factory=list)


class NodeAllocation(Object, frozen=True, kw_only=True, tag="NodeAllocation"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: NodeAllocationSpec = msgspec.field(default_factory=NodeAllocationSpec)
