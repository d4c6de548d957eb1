"""Pod CIDRs for nodes: each node without ``spec.podCIDR`` gets the first free subnet of the
cluster CIDR (default 10.77.0.0/16 split into /24s), so pod addresses never overlap between nodes.

A node that already names a pod CIDR (set by its operator or a simulator) keeps it; subnets of
the cluster CIDR that such nodes use count as taken. Pure reconcile, runner-driven.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import msgspec

from shoal.controllers.actions import Actions, EmitEvent, EventType, Key, Update, ref_of
from shoal.controllers.cache import Cache
from shoal.controllers.runner import Enqueue, KeyMapper, own_key
from shoal.model import Node

DEFAULT_CLUSTER_CIDR = "10.77.0.0/16"
DEFAULT_NODE_MASK = 24
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _taken(nodes: Iterable[Node], cluster: Network) -> set[Network]:
    used: set[Network] = set()
    for node in nodes:
        try:
            network = ipaddress.ip_network(node.spec.pod_cidr, strict=False)
        except ValueError:
            continue
        if network.version == cluster.version and network.subnet_of(cluster):  # type: ignore[arg-type]
            used.add(network)
    return used


def assign_pod_cidr(node: Node, others: Iterable[Node], cluster: Network, mask: int) -> Actions:
    """Give ``node`` the first subnet of ``cluster`` that no other node uses."""
    if node.spec.pod_cidr:
        return Actions()
    taken = _taken(others, cluster)
    for subnet in cluster.subnets(new_prefix=mask):
        if not any(subnet.overlaps(used) for used in taken):
            spec = msgspec.structs.replace(node.spec, pod_cidr=str(subnet))
            return Actions((Update(msgspec.structs.replace(node, spec=spec)),))
    return Actions((EmitEvent(ref_of(node), "CIDRNotAvailable",
                              f"no free /{mask} left in the cluster CIDR {cluster}; widen --cluster-cidr",
                              EventType.WARNING),))


class NodeIPAM:
    name = "node-ipam"
    kind = "Node"

    def __init__(self, cluster_cidr: str = DEFAULT_CLUSTER_CIDR, node_mask: int = DEFAULT_NODE_MASK) -> None:
        self.cluster = ipaddress.ip_network(cluster_cidr)
        if not self.cluster.prefixlen <= node_mask <= self.cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask /{node_mask} does not fit in the cluster CIDR {cluster_cidr}")
        self.mask = node_mask

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"Node": own_key}

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        node = cache.get(key)
        if not isinstance(node, Node):
            return Actions()
        others = [n for n in cache.objects("Node") if isinstance(n, Node) and n.metadata.name != node.metadata.name]
        return assign_pod_cidr(node, others, self.cluster, self.mask)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return lambda: None
