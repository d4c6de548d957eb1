"""The working copy one ``schedule`` call changes: usage, host ports, images, spread counters.

Owns binding a pod to a node and evicting a victim, with every derived column kept in step,
and the change log (node indices in order) that lets cached per-class scores refresh only the
rows that changed. Arrays are copied from the snapshot on first write, so the snapshot stays
reusable. Must not choose nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from shoal.scheduler.podview import PodView
from shoal.scheduler.snapshot import NO_PODS_PRIORITY, ClusterSnapshot, PlacedPod


class WorkState:
    def __init__(self, snapshot: ClusterSnapshot, extra_columns: Iterable[str] = ()) -> None:
        self.snapshot = snapshot
        self.nodes = snapshot.nodes
        extra = tuple(sorted(set(extra_columns) - set(snapshot.columns)))
        self.columns = (*snapshot.columns, *extra)
        self.column = {name: c for c, name in enumerate(self.columns)}
        pad = np.zeros((len(extra), len(snapshot)), dtype=np.int64)
        self.alloc = np.vstack((snapshot.alloc, pad)) if extra else snapshot.alloc
        self.used = np.vstack((snapshot.used, pad)) if extra else snapshot.used.copy()
        self.min_priority = snapshot.min_priority.copy()
        self.bound_count = snapshot.bound_count
        self.log: list[int] = []
        self.owner_log: dict[str, list[int]] = {}  # per owner: nodes whose count of its pods changed
        self._placed: dict[int, list[PlacedPod]] = {}
        self._ports: dict[tuple[str, int], np.ndarray] = {}
        self._images: dict[str, np.ndarray] = {}
        self._owners: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._zero = np.zeros(len(snapshot), dtype=bool)
        self._zero.flags.writeable = False

    def request_vector(self, requests: Mapping[str, int]) -> np.ndarray:
        vector = np.zeros(len(self.columns), dtype=np.int64)
        for name, amount in requests.items():
            vector[self.column[name]] = amount
        return vector

    def placed(self, j: int) -> list[PlacedPod] | tuple[PlacedPod, ...]:
        return self._placed.get(j, self.snapshot.placed[j])

    def port_mask(self, port: tuple[str, int]) -> np.ndarray:
        """Nodes where ``port`` is taken (read-only view until written)."""
        mask = self._ports.get(port)
        return mask if mask is not None else self.snapshot.port_masks.get(port, self._zero)

    def image_mask(self, image: str) -> np.ndarray:
        mask = self._images.get(image)
        return mask if mask is not None else self.snapshot.image_masks.get(image, self._zero)

    def owner_counts(self, owner: str) -> tuple[np.ndarray, np.ndarray]:
        """(pods of ``owner`` per node, per zone)."""
        counts = self._owners.get(owner)
        if counts is None:
            per_node = self.snapshot.owner_counts.get(owner)
            per_node = np.zeros(len(self.nodes), np.int64) if per_node is None else per_node.copy()
            per_zone = np.bincount(self.snapshot.zone_idx, weights=per_node,
                                   minlength=len(self.snapshot.zones)).astype(np.int64)
            counts = self._owners[owner] = (per_node, per_zone)
        return counts

    def _writable(self, masks: dict[object, np.ndarray], item: object, current: np.ndarray) -> np.ndarray:
        mask = masks.get(item)
        if mask is None:
            mask = masks[item] = current.copy()
        return mask

    def bind(self, view: PodView, vector: np.ndarray, j: int) -> None:
        cls = view.cls
        self.used[:, j] += vector
        for port in cls.host_ports:
            self._writable(self._ports, port, self.port_mask(port))[j] = True  # type: ignore[arg-type]
        for image in cls.images:
            self._writable(self._images, image, self.image_mask(image))[j] = True  # type: ignore[arg-type]
        if view.owner is not None:
            per_node, per_zone = self.owner_counts(view.owner)
            per_node[j] += 1
            per_zone[self.snapshot.zone_idx[j]] += 1
            self.owner_log.setdefault(view.owner, []).append(j)
        self.min_priority[j] = min(int(self.min_priority[j]), view.priority)
        pods = self._placed.setdefault(j, list(self.snapshot.placed[j]))
        pods.append(PlacedPod(view.key, view.priority, cls.requests, cls.host_ports, cls.images, view.owner))
        self.bound_count += 1
        self.log.append(j)

    def evict(self, victim: PlacedPod, j: int) -> None:
        pods = self._placed.setdefault(j, list(self.snapshot.placed[j]))
        pods.remove(victim)
        self.used[:, j] -= self.request_vector(victim.requests)
        for port in victim.host_ports:
            taken = any(port in p.host_ports for p in pods)
            self._writable(self._ports, port, self.port_mask(port))[j] = taken  # type: ignore[arg-type]
        node_images = self.nodes[j].images
        for image in victim.images:
            present = image in node_images or any(image in p.images for p in pods)
            self._writable(self._images, image, self.image_mask(image))[j] = present  # type: ignore[arg-type]
        if victim.owner is not None:
            per_node, per_zone = self.owner_counts(victim.owner)
            per_node[j] -= 1
            per_zone[self.snapshot.zone_idx[j]] -= 1
            self.owner_log.setdefault(victim.owner, []).append(j)
        self.min_priority[j] = min((p.priority for p in pods), default=NO_PODS_PRIORITY)
        self.log.append(j)
