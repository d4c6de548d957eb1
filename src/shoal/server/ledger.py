"""The rules of a node's allocation ledger (``NodeAllocation``): which entries still hold, and
which new pods fit next to them.

Pure functions over the ledger's entries, the scheduler's pod cache (a lookup) and the node's
allocatable amounts; the committer (committer.py) reads and writes the ledger around them. An
entry is dropped only when the cache proves the pod cannot be (or become) bound to this node:
it was deleted, finished, bound elsewhere, or changed since the version its binding was made
against (so that binding's compare-and-swap must fail). An entry whose binding may still be in
flight, or that the cache has not caught up with, is kept. Must not do I/O or read a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from shoal.model import Container, Pod, PodPhase, PodSpec
from shoal.model.allocation import AllocatedPort, PodAllocation
from shoal.model.quantity import QuantityError
from shoal.scheduler.podview import host_ports, pod_key, pod_requests

PodKey = tuple[str, str]
PodLookup = Callable[[PodKey], Pod | None]
_FINISHED = (PodPhase.SUCCEEDED, PodPhase.FAILED)


def version(resource_version: str) -> int:
    """A resourceVersion as a store revision (0 when it is not a number)."""
    return int(resource_version) if resource_version.isdigit() else 0


def requests_of(spec: PodSpec) -> dict[str, int]:
    """The pod's requests as the scheduler counts them; 1 pod slot when a quantity is unreadable."""
    try:
        return pod_requests(spec)
    except QuantityError:
        return {"pods": 1}


def _resources(containers: Sequence[Container]) -> tuple[object, ...]:
    return tuple((tuple(c.resources.requests.items()), tuple(c.resources.limits.items())) for c in containers)


class RequestsMemo:
    """``requests_of`` remembered per distinct set of container resources: pods stamped from one
    template parse their quantities once. Bounded; the caller owns it (no module state)."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._known: dict[tuple[object, ...], dict[str, int]] = {}

    def __call__(self, spec: PodSpec) -> dict[str, int]:
        key = (_resources(spec.containers), _resources(spec.init_containers))
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= self._limit:
                self._known.clear()
            known = self._known[key] = requests_of(spec)
        return known


def allocation_of(pod: Pod, requests: Callable[[PodSpec], dict[str, int]] = requests_of) -> PodAllocation:
    """The ledger entry for ``pod``: its requests (see ``requests_of``), its host ports, and the pod
    version a binding would be made against."""
    meta = pod.metadata
    ports = [AllocatedPort(protocol=protocol, port=port) for protocol, port in sorted(host_ports(pod.spec))]
    return PodAllocation(namespace=pod_key(pod)[0], name=meta.name, uid=meta.uid,
                         resource_version=meta.resource_version, requests=requests(pod.spec), host_ports=ports)


def holds(entry: PodAllocation, pod: Pod | None, node: str, seen_revision: int) -> bool:
    """Whether ``entry`` must still be counted against ``node``, given the cache's ``pod`` (None when
    absent) and the revision through which the cache has seen every pod event."""
    if pod is None:
        return version(entry.resource_version) > seen_revision  # not caught up with the pod yet
    if pod.metadata.uid != entry.uid:
        return False  # the pod was deleted; this is a new one under the same name
    if pod.spec.node_name:
        return pod.spec.node_name == node and pod.status.phase not in _FINISHED
    # Unbound: the binding may be in flight until the pod moves past the version it was made against.
    return version(pod.metadata.resource_version) <= version(entry.resource_version)


def prune(entries: Iterable[PodAllocation], lookup: PodLookup, node: str, seen_revision: int,
          bound_here: Iterable[Pod] = ()) -> list[PodAllocation]:
    """The entries that still hold (one per pod uid), plus an entry for every pod the cache shows
    bound to ``node`` that the ledger lacks (bound before the ledger existed, or by hand)."""
    kept: dict[str, PodAllocation] = {}
    for entry in entries:
        if entry.uid not in kept and holds(entry, lookup((entry.namespace, entry.name)), node, seen_revision):
            kept[entry.uid] = entry
    for pod in bound_here:
        if (pod.metadata.uid not in kept and pod.spec.node_name == node and pod.status.phase not in _FINISHED):
            kept[pod.metadata.uid] = allocation_of(pod)
    return list(kept.values())


@dataclass(frozen=True, slots=True)
class Admission:
    """The ledger to write (``entries``) and which candidates it admitted or turned away."""

    entries: list[PodAllocation]
    admitted: list[PodAllocation]
    rejected: list[PodAllocation]


PortCounts = dict[tuple[str, int], int]  # (protocol, port) -> entries holding it


def _add(entry: PodAllocation, used: dict[str, int], ports: PortCounts, sign: int) -> None:
    for name, amount in entry.requests.items():
        used[name] = used.get(name, 0) + sign * amount
    for port in entry.host_ports:
        key = (port.protocol, port.port)
        ports[key] = ports.get(key, 0) + sign


def _usage(entries: Iterable[PodAllocation]) -> tuple[dict[str, int], PortCounts]:
    used: dict[str, int] = {}
    ports: PortCounts = {}
    for entry in entries:
        _add(entry, used, ports, 1)
    return used, ports


def fits(entry: PodAllocation, used: Mapping[str, int], ports: Mapping[tuple[str, int], int],
         allocatable: Mapping[str, int]) -> bool:
    """The scheduler's fit rule: every resource the pod requests fits beside ``used``, and its host
    ports are free. (Resources it does not request are not checked, as in the scheduler.)"""
    if any(ports.get((p.protocol, p.port), 0) > 0 for p in entry.host_ports):
        return False
    return all(used.get(name, 0) + amount <= allocatable.get(name, 0)
               for name, amount in entry.requests.items() if amount > 0)


def admit(committed: Sequence[PodAllocation], candidates: Sequence[PodAllocation],
          allocatable: Mapping[str, int]) -> Admission:
    """Add ``candidates`` in order to ``committed`` while each fits. A candidate already in the
    ledger (same uid: an earlier attempt to bind it here) replaces its old entry."""
    by_uid = {entry.uid: entry for entry in committed}
    used, ports = _usage(by_uid.values())
    admitted: list[PodAllocation] = []
    rejected: list[PodAllocation] = []
    for candidate in candidates:
        previous = by_uid.get(candidate.uid)
        if previous is not None:
            _add(previous, used, ports, -1)
        if fits(candidate, used, ports, allocatable):
            by_uid[candidate.uid] = candidate
            _add(candidate, used, ports, 1)
            admitted.append(candidate)
        else:
            if previous is not None:
                _add(previous, used, ports, 1)
            rejected.append(candidate)
    return Admission(list(by_uid.values()), admitted, rejected)
