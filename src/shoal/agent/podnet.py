"""What a pod asks of pod networking, read from its spec: hostPorts, bandwidth limits, namespace joins.

Pure functions: ``port_mappings`` (every container port with a ``hostPort``), ``pod_bandwidth``
(the ``kubernetes.io/ingress-bandwidth`` / ``egress-bandwidth`` annotations, quantities in bit/s)
and ``pod_joins`` (which namespaces a container joins: the pod's network namespace by path, IPC
and UTS of the pod's first container). It must not create namespaces or call CNI.
"""

from __future__ import annotations

from typing import Any

from shoal.model.pod import Pod
from shoal.model.quantity import QuantityError, parse_bytes
from shoal.net.protocol import Bandwidth, PortMapping
from shoal.runtime.protocol import NamespaceJoin, sandbox_joins

__all__ = ["EGRESS_BANDWIDTH", "INGRESS_BANDWIDTH", "pod_bandwidth", "pod_joins", "port_mappings"]

INGRESS_BANDWIDTH = "kubernetes.io/ingress-bandwidth"
EGRESS_BANDWIDTH = "kubernetes.io/egress-bandwidth"
_MAX_RATE = 2**63 - 1


def port_mappings(pod: Pod) -> tuple[PortMapping, ...]:
    """One mapping per container port that names a ``hostPort``."""
    out: list[PortMapping] = []
    for c in pod.spec.containers:
        for p in c.ports:
            if p.host_port:
                out.append(PortMapping(p.host_port, p.container_port, p.protocol.lower()))
    return tuple(out)


def _rate(annotations: dict[str, Any], key: str) -> int:
    text = annotations.get(key)
    if text is None or text == "":
        return 0
    where = f"metadata.annotations[{key}]"
    try:
        rate = parse_bytes(str(text))
    except QuantityError as exc:
        raise ValueError(f'{where}: {exc}; give bits per second, e.g. "10M" for 10 Mbit/s') from None
    if not 1 <= rate <= _MAX_RATE:
        raise ValueError(f'{where}: "{text}" is not a positive rate; give bits per second, e.g. "10M"')
    return rate


def pod_bandwidth(pod: dict[str, Any]) -> Bandwidth | None:
    """The pod's rate limits from its annotations, or None when it has none. Raises ``ValueError``
    naming the annotation when one is not a quantity."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    ingress, egress = _rate(annotations, INGRESS_BANDWIDTH), _rate(annotations, EGRESS_BANDWIDTH)
    if not ingress and not egress:
        return None
    return Bandwidth(ingress_rate=ingress, egress_rate=egress)


def pod_joins(sandbox_pid: int, network: NamespaceJoin | None) -> tuple[NamespaceJoin, ...]:
    """Namespaces a container joins: with ``sandbox_pid`` (not the first container) the IPC and UTS
    namespaces of the first one; ``network`` (the pod's network namespace) for every container."""
    joins = [j for j in sandbox_joins(sandbox_pid) if network is None or j.type != "network"] if sandbox_pid else []
    if network is not None:
        joins.insert(0, network)
    return tuple(joins)
