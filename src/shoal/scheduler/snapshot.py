"""The cluster as the scheduler sees it: compact node views and usage arrays, built once per round.

Owns turning Node and bound Pod objects into ``NodeInfo`` rows (sorted by node name, the stable
order every policy uses) and numpy columns (allocatable, used, zones, labels, taint sets, host
ports, images, per-owner spread counters). A snapshot is never changed by ``schedule``: each
call works on its own copy of the usage it changes. Must not read clocks, files or the store.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoal.model.node import LABEL_ARCH, LABEL_ZONE, Node, NodePhase
from shoal.model.pod import Pod, PodPhase
from shoal.model.quantity import QuantityError, parse_resource
from shoal.scheduler.podview import PodKey, host_ports, images, owner_of, pod_key, pod_requests
from shoal.scheduler.reasons import Reason

BASE_COLUMNS = ("cpu", "memory", "ephemeral-storage", "pods")
DEFAULT_MAX_PODS = 110
UNKNOWN_RTT_MS = 1e9  # a node that never measured RTT to a zone is treated as very far away
NO_PODS_PRIORITY = 1 << 62
_TERMINAL = (PodPhase.SUCCEEDED, PodPhase.FAILED)

TaintView = tuple[str, str, str]  # (key, value, effect)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node, compacted: what filters and scores read."""

    name: str
    not_ready: Reason | None  # None when the node takes new pods
    labels: Mapping[str, str]
    zone: str
    arch: str
    runtimes: frozenset[str]
    taints: tuple[TaintView, ...]
    allocatable: Mapping[str, int]
    on_battery: bool
    battery_percent: float  # +inf on mains; 0 when a battery node has not reported
    rtt_ms: Mapping[str, float]
    energy_score: int
    images: frozenset[str]


@dataclass(frozen=True, slots=True)
class PlacedPod:
    """A pod bound to a node: what it holds there (for usage, ports, spread and preemption)."""

    key: PodKey
    priority: int
    requests: Mapping[str, int]
    host_ports: frozenset[tuple[str, int]]
    images: frozenset[str]
    owner: str | None


def _not_ready(node: Node) -> Reason | None:
    phase = node.status.phase
    if phase == NodePhase.OFFLINE:
        return Reason.OFFLINE
    if node.spec.unschedulable or phase == NodePhase.MAINTENANCE:
        return Reason.UNSCHEDULABLE
    return None if phase == NodePhase.ONLINE else Reason.NOT_READY


def _allocatable(node: Node) -> dict[str, int]:
    status = node.status
    out: dict[str, int] = {}
    for name in {*status.capacity, *status.allocatable}:
        value = status.allocatable[name] if name in status.allocatable else status.capacity[name]
        try:
            out[name] = parse_resource(name, value)
        except QuantityError:
            out[name] = 0  # an unreadable figure offers nothing rather than failing the round
    out.setdefault("pods", DEFAULT_MAX_PODS)
    return out


def energy_score(on_battery: bool, battery_percent: float, watts: float | None, cpu_millis: int) -> int:
    """0..100: mains power, a full battery and few watts per core score high."""
    battery_part = int(min(100.0, max(0.0, battery_percent))) if on_battery else 100
    if watts is None:
        watts_part = 50
    else:
        per_core = watts / (cpu_millis / 1000) if cpu_millis > 0 else watts
        watts_part = 100 - min(100, max(0, int(per_core * 10)))
    return (2 * battery_part + watts_part) // 3


def node_info(node: Node) -> NodeInfo:
    status, labels = node.status, node.metadata.labels
    allocatable = _allocatable(node)
    power = status.power
    on_battery = power is not None and power.source == "battery"
    battery = (power.battery_percent or 0.0) if (power is not None and on_battery) else math.inf
    arch = labels.get(LABEL_ARCH) or (status.node_info.architecture if status.node_info else "")
    return NodeInfo(
        name=node.metadata.name, not_ready=_not_ready(node), labels=dict(labels),
        zone=labels.get(LABEL_ZONE, ""), arch=arch, runtimes=frozenset(status.runtimes or ("oci",)),
        taints=tuple((t.key, t.value, t.effect) for t in node.spec.taints), allocatable=allocatable,
        on_battery=on_battery, battery_percent=battery, rtt_ms=dict(status.rtt_ms),
        energy_score=energy_score(on_battery, battery, power.watts if power else None,
                                  allocatable.get("cpu", 0)),
        images=frozenset(status.images))


def placed_pod(pod: Pod) -> PlacedPod:
    try:
        requests = pod_requests(pod.spec)
    except QuantityError:
        requests = {"pods": 1}  # a bound pod with a bad quantity still occupies a pod slot
    return PlacedPod(pod_key(pod), pod.spec.priority, requests, host_ports(pod.spec), images(pod.spec),
                     owner_of(pod)[0])


def node_rtt(node: NodeInfo, zone: str) -> float:
    """Measured RTT from ``node`` to ``zone``; 0 inside the zone, very large when unmeasured."""
    return 0.0 if node.zone == zone else node.rtt_ms.get(zone, UNKNOWN_RTT_MS)


class ClusterSnapshot:
    """Nodes (sorted by name) and the pods bound to them, as rows and numpy columns. Read-only."""

    def __init__(self, nodes: tuple[NodeInfo, ...], placed: tuple[tuple[PlacedPod, ...], ...]) -> None:
        self.nodes = nodes
        self.placed = placed
        self.index = {node.name: i for i, node in enumerate(nodes)}
        n = len(nodes)
        extra = sorted(({r for node in nodes for r in node.allocatable}
                        | {r for pods in placed for p in pods for r in p.requests}) - set(BASE_COLUMNS))
        self.columns: tuple[str, ...] = (*BASE_COLUMNS, *extra)
        self.alloc = np.zeros((len(self.columns), n), dtype=np.int64)
        self.used = np.zeros_like(self.alloc)
        col = {name: c for c, name in enumerate(self.columns)}
        self.port_masks: dict[tuple[str, int], np.ndarray] = {}
        self.image_masks: dict[str, np.ndarray] = {}
        self.owner_counts: dict[str, np.ndarray] = {}
        self.min_priority = np.full(n, NO_PODS_PRIORITY, dtype=np.int64)
        self.bound_count = sum(len(pods) for pods in placed)
        zones = sorted({node.zone for node in nodes})
        self.zones = tuple(zones)
        zone_of = {z: i for i, z in enumerate(zones)}
        self.zone_idx = np.array([zone_of[node.zone] for node in nodes], dtype=np.intp)
        taint_sets: dict[tuple[TaintView, ...], int] = {}
        self.taint_idx = np.array([taint_sets.setdefault(node.taints, len(taint_sets)) for node in nodes],
                                  dtype=np.intp)
        self.taint_sets = tuple(taint_sets)
        self.phase_reason = np.array([list(Reason).index(node.not_ready) + 1 if node.not_ready else 0
                                      for node in nodes], dtype=np.int8)
        self.energy = np.array([node.energy_score for node in nodes], dtype=np.int64)
        self.battery = np.array([node.battery_percent for node in nodes], dtype=np.float64)
        self.arch = np.array([node.arch for node in nodes], dtype=object)
        self._runtime_masks: dict[str, np.ndarray] = {}
        for j, node in enumerate(nodes):
            for name, amount in node.allocatable.items():
                self.alloc[col[name], j] = amount
            for image in node.images:
                self._mask(self.image_masks, image)[j] = True
            for pod in placed[j]:
                for name, amount in pod.requests.items():
                    self.used[col[name], j] += amount
                for port in pod.host_ports:
                    self._mask(self.port_masks, port)[j] = True
                for image in pod.images:
                    self._mask(self.image_masks, image)[j] = True
                if pod.owner is not None:
                    self.owner_counts.setdefault(pod.owner, np.zeros(n, dtype=np.int64))[j] += 1
                self.min_priority[j] = min(int(self.min_priority[j]), pod.priority)
        self.owner_sizes = {owner: int(counts.sum()) for owner, counts in self.owner_counts.items()}
        self._label_columns: dict[str, tuple[dict[str, int], np.ndarray]] = {}
        self._rtt_columns: dict[str, np.ndarray] = {}
        for array in (self.alloc, self.used, self.zone_idx, self.taint_idx, self.energy, self.min_priority,
                      self.battery, self.arch, *self.port_masks.values(), *self.image_masks.values(),
                      *self.owner_counts.values()):
            array.flags.writeable = False

    def _mask(self, masks: dict[tuple[str, int], np.ndarray] | dict[str, np.ndarray], item: object) -> np.ndarray:
        mask = masks.get(item)  # type: ignore[call-overload]
        if mask is None:
            mask = masks[item] = np.zeros(len(self.nodes), dtype=bool)  # type: ignore[index]
        return mask  # type: ignore[no-any-return]

    @classmethod
    def build(cls, nodes: Sequence[Node], pods: Sequence[Pod]) -> ClusterSnapshot:
        """A snapshot of ``nodes`` with ``pods`` (those bound and not finished) counted against them.

        Pods bound to a node that is not in ``nodes`` are ignored."""
        infos = tuple(sorted((node_info(node) for node in nodes), key=lambda info: info.name))
        index = {info.name: i for i, info in enumerate(infos)}
        placed: list[list[PlacedPod]] = [[] for _ in infos]
        for pod in pods:
            j = index.get(pod.spec.node_name)
            if j is not None and pod.status.phase not in _TERMINAL:
                placed[j].append(placed_pod(pod))
        return cls(infos, tuple(tuple(p) for p in placed))

    def with_pods(self, pods: Sequence[Pod]) -> ClusterSnapshot:
        """A new snapshot with ``pods`` (bound, not finished) added; this one is unchanged.

        Node rows and per-node caches are shared, so this costs O(nodes) array copies plus the
        pods, not a rebuild: the server's scheduling loop applies each round's bindings with it."""
        added = [(self.index[pod.spec.node_name], placed_pod(pod)) for pod in pods
                 if pod.spec.node_name in self.index and pod.status.phase not in _TERMINAL]
        if any(name not in self.columns for _, p in added for name in p.requests):
            placed = [list(pods_on) for pods_on in self.placed]
            for j, p in added:
                placed[j].append(p)
            return ClusterSnapshot(self.nodes, tuple(tuple(pods_on) for pods_on in placed))
        new = copy.copy(self)
        new.used, new.min_priority = self.used.copy(), self.min_priority.copy()
        new.port_masks, new.image_masks = dict(self.port_masks), dict(self.image_masks)
        new.owner_counts = dict(self.owner_counts)
        new_placed = list(self.placed)
        fresh: set[int] = set()  # ids of arrays already copied for ``new``
        col = {name: c for c, name in enumerate(self.columns)}

        def writable(masks: dict[Any, np.ndarray], item: object, dtype: type) -> np.ndarray:
            array = masks.get(item)
            if array is None:
                array = np.zeros(len(self.nodes), dtype=dtype)
            elif id(array) not in fresh:
                array = array.copy()
            fresh.add(id(array))
            masks[item] = array
            return array

        for j, pod in added:
            new_placed[j] = (*new_placed[j], pod)
            for name, amount in pod.requests.items():
                new.used[col[name], j] += amount
            for port in pod.host_ports:
                writable(new.port_masks, port, bool)[j] = True
            for image in pod.images:
                writable(new.image_masks, image, bool)[j] = True
            if pod.owner is not None:
                writable(new.owner_counts, pod.owner, np.int64)[j] += 1
            new.min_priority[j] = min(int(new.min_priority[j]), pod.priority)
        new.placed = tuple(new_placed)
        new.bound_count = self.bound_count + len(added)
        new.owner_sizes = dict(self.owner_sizes)
        for owner in {pod.owner for _, pod in added if pod.owner is not None}:
            new.owner_sizes[owner] = int(new.owner_counts[owner].sum())
        for array in (new.used, new.min_priority, *new.port_masks.values(), *new.image_masks.values(),
                      *new.owner_counts.values()):
            array.flags.writeable = False
        return new

    def __len__(self) -> int:
        return len(self.nodes)

    def label_column(self, key: str) -> tuple[dict[str, int], np.ndarray]:
        """Codes of label ``key`` per node (-1 where unset) and the value → code table."""
        cached = self._label_columns.get(key)
        if cached is None:
            codes: dict[str, int] = {}
            values = [node.labels.get(key) for node in self.nodes]
            array = np.array([-1 if v is None else codes.setdefault(v, len(codes)) for v in values],
                             dtype=np.int64)
            cached = self._label_columns[key] = (codes, array)
        return cached

    def rtt_column(self, zone: str) -> np.ndarray:
        """``node_rtt`` of every node to ``zone``."""
        cached = self._rtt_columns.get(zone)
        if cached is None:
            cached = self._rtt_columns[zone] = np.array([node_rtt(node, zone) for node in self.nodes],
                                                        dtype=np.float64)
        return cached

    def runtime_mask(self, runtime: str) -> np.ndarray:
        """Nodes that run ``runtime`` (oci, wasm)."""
        cached = self._runtime_masks.get(runtime)
        if cached is None:
            cached = self._runtime_masks[runtime] = np.array([runtime in node.runtimes for node in self.nodes],
                                                             dtype=bool)
        return cached
