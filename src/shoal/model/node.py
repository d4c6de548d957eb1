"""The Node kind: an edge host with labels, taints, capacity, power, RTT and phase."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import Condition, ObjectMeta
from shoal.model.pod import Quantity


class NodePhase(StrEnum):
    PENDING = "Pending"
    ONLINE = "Online"
    OFFLINE = "Offline"
    MAINTENANCE = "Maintenance"


class Taint(Spec, frozen=True, kw_only=True):
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute
    time_added: str = ""


class NodeSpec(Spec, frozen=True, kw_only=True):
    unschedulable: bool = False
    pod_cidr: str = msgspec.field(default="", name="podCIDR")
    taints: list[Taint] = msgspec.field(default_factory=list)


class PowerStatus(Spec, frozen=True, kw_only=True):
    source: str = "mains"  # mains | battery
    battery_percent: float | None = None
    watts: float | None = None


class NodeAddress(Spec, frozen=True, kw_only=True):
    type: str
    address: str


class NodeInfo(Spec, frozen=True, kw_only=True):
    architecture: str = ""
    operating_system: str = "linux"
    kernel_version: str = ""
    agent_version: str = ""


class NodeStatus(Spec, frozen=True, kw_only=True, omit_defaults=False):
    phase: NodePhase = NodePhase.PENDING
    capacity: dict[str, Quantity] = msgspec.field(default_factory=dict)
    allocatable: dict[str, Quantity] = msgspec.field(default_factory=dict)
    runtimes: list[str] = msgspec.field(default_factory=list)
    power: PowerStatus | None = None
    rtt_ms: dict[str, float] = msgspec.field(default_factory=dict, name="rttMs")
    conditions: list[Condition] = msgspec.field(default_factory=list)
    addresses: list[NodeAddress] = msgspec.field(default_factory=list)
    node_info: NodeInfo | None = None
    images: list[str] = msgspec.field(default_factory=list)
    last_heartbeat_time: str = ""


class Node(Object, frozen=True, kw_only=True, tag="Node"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)


# Well-known labels and taints.
LABEL_ZONE = "shoal.io/zone"
LABEL_ARCH = "shoal.io/arch"
LABEL_HOSTNAME = "shoal.io/hostname"
TAINT_OFFLINE = "node.shoal.io/offline"
TAINT_UNSCHEDULABLE = "node.shoal.io/unschedulable"
