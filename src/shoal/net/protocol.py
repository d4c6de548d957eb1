"""The contract between the agent and pod networking, with the data it speaks.

Owns the frozen dataclasses a pod network takes and returns (``PortMapping``, ``Bandwidth``,
``PodSandboxNetwork``), the errors every implementation raises, and the ``SandboxNetwork``
protocol that the real CNI-backed ``PodNetwork`` and the in-memory fake both satisfy. It must not
touch the host: no netlink, no subprocesses, no files.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Bandwidth",
    "NetworkError",
    "PodSandboxNetwork",
    "PortMapping",
    "SandboxNetwork",
    "check_pod_uid",
]

_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class NetworkError(Exception):
    """Base of every error pod networking raises; the message says what failed and what to do."""


def check_pod_uid(pod_uid: str) -> str:
    """A pod uid is used as CNI_CONTAINERID and as a file name, so it must be a safe token."""
    if not _CONTAINER_ID.match(pod_uid):
        raise NetworkError(
            f"pod uid {pod_uid!r} cannot name a network sandbox: use letters, digits, '_', '.' "
            "or '-', starting with a letter or digit (at most 128 characters)"
        )
    return pod_uid


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A hostPort: traffic to ``host_port`` on the node reaches ``container_port`` in the pod."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def to_cni(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.lower(),
        }
        if self.host_ip:
            entry["hostIP"] = self.host_ip
        return entry


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Per-pod rate limits in bits per second (bursts in bits), as the CNI bandwidth plugin takes
    them; 0 means unlimited in that direction. Ingress is traffic into the pod."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0

    def to_cni(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.ingress_rate:
            out |= {"ingressRate": self.ingress_rate, "ingressBurst": self.ingress_burst or self.ingress_rate}
        if self.egress_rate:
            out |= {"egressRate": self.egress_rate, "egressBurst": self.egress_burst or self.egress_rate}
        return out


@dataclass(frozen=True, slots=True)
class PodSandboxNetwork:
    """A wired pod network namespace: containers join ``netns_path`` (OCI ``network`` namespace)."""

    pod_uid: str
    netns_path: str
    ip: str
    gateway: str
    prefix_length: int
    interface: str = "eth0"


class SandboxNetwork(Protocol):
    """Pod networking on one node. ``setup`` and ``teardown`` are idempotent."""

    async def setup(
        self,
        pod_uid: str,
        pod_name: str,
        namespace: str,
        port_mappings: Sequence[PortMapping] = (),
        bandwidth: Bandwidth | None = None,
    ) -> PodSandboxNetwork: ...

    async def teardown(self, pod_uid: str) -> None: ...

    async def check(self, pod_uid: str) -> None: ...

    async def recover(self, live_pod_uids: Collection[str]) -> list[PodSandboxNetwork]: ...
