"""Why a node was rejected: the reason constants users grep for, and the aggregated message.

Owns the exact wording of every rejection reason (Kubernetes' phrasing where the concept is the
same) and the "0/5 nodes are available: ..." summary. It must not decide anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Reason(StrEnum):
    """A filter's rejection reason, counted per node in an Unschedulable decision."""

    NOT_READY = "node(s) were not ready"
    OFFLINE = "node(s) were offline"
    UNSCHEDULABLE = "node(s) were unschedulable"
    RUNTIME = "node(s) didn't support runtime"
    ARCH = "node(s) didn't match arch"
    SELECTOR = "node(s) didn't match node selector"
    TAINT = "node(s) had untolerated taint"
    LATENCY = "node(s) exceeded latency bound"
    BATTERY = "node(s) had battery below minimum"
    PORTS = "node(s) didn't have free ports"
    TOO_MANY_PODS = "Too many pods"
    INVALID_POD = "pod spec is invalid"


INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"


def insufficient(resource: str) -> str:
    """The reason for a node lacking ``resource``: "Insufficient memory", or "Too many pods"."""
    return Reason.TOO_MANY_PODS.value if resource == "pods" else f"Insufficient {resource}"


def format_message(total_nodes: int, reasons: Mapping[str, int]) -> str:
    """``0/5 nodes are available: 3 Insufficient memory, 2 node(s) were offline.``

    Reasons are listed most frequent first, then alphabetically, so the message is stable.
    """
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    parts = ", ".join(f"{count} {reason}" for reason, count in ordered)
    head = f"0/{total_nodes} nodes are available"
    return f"{head}: {parts}." if parts else f"{head}."
