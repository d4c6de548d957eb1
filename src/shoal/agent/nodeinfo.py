"""What this node is: capacity, architecture, kernel, runtimes, address, labels → a Node manifest.

``probe_facts`` reads the host (cpu count, /proc/meminfo, the data dir's filesystem, uname,
runc/conmon presence, the source address used to reach the server); ``node_manifest`` and
``parse_labels`` are pure. It must not talk to the server.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shoal import __version__

__all__ = ["ARCH_NAMES", "METRICS_ADDRESS_ANNOTATION", "NodeFacts", "metrics_annotations", "node_manifest",
           "parse_labels", "probe_facts", "source_ip"]

ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv8l": "arm",
              "armv7l": "arm", "armv6l": "arm", "arm": "arm"}
MAX_PODS = 110
METRICS_ADDRESS_ANNOTATION = "shoal.io/metrics-address"  # where Prometheus finds this node's /metrics
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class NodeFacts:
    cpu: int
    memory_bytes: int
    storage_bytes: int
    arch: str
    kernel: str
    hostname: str
    runtimes: tuple[str, ...]
    address: str


def _mem_total(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def source_ip(server: str) -> str:
    """The local address the kernel picks to reach ``server`` (no packet is sent)."""
    parts = urlsplit(server)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6443
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((host, port))
            return str(sock.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _runtimes(runc: str, conmon: str) -> tuple[str, ...]:
    found = []
    if shutil.which(runc) and shutil.which(conmon):
        found.append("oci")
    if importlib.util.find_spec("wasmtime") is not None:  # the wasm host can run (found, not imported)
        found.append("wasm")
    return tuple(found)


def probe_facts(data_dir: Path, server: str, runc: str = "/usr/sbin/runc",
                conmon: str = "/usr/bin/conmon") -> NodeFacts:
    uname = os.uname()
    vfs = os.statvfs(data_dir)
    try:
        cpus = len(os.sched_getaffinity(0))
    except OSError:
        cpus = os.cpu_count() or 1
    return NodeFacts(
        cpu=cpus,
        memory_bytes=_mem_total(),
        storage_bytes=vfs.f_blocks * vfs.f_frsize,
        arch=ARCH_NAMES.get(uname.machine, platform.machine().lower()),
        kernel=uname.release,
        hostname=socket.gethostname().lower(),
        runtimes=_runtimes(runc, conmon),
        address=source_ip(server),
    )


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` → dict; a malformed item raises ValueError naming it."""
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f'--labels: "{item}" is not key=value, e.g. --labels shoal.io/zone=plant-a,tier=edge')
        labels[key.strip()] = value.strip()
    return labels


def node_manifest(name: str, facts: NodeFacts, labels: dict[str, str]) -> dict[str, Any]:
    """The Node this agent registers (status included; the server keeps phase and conditions)."""
    capacity = {"cpu": str(facts.cpu), "memory": f"{facts.memory_bytes // 1024}Ki", "pods": str(MAX_PODS),
                "ephemeral-storage": f"{facts.storage_bytes // 1024}Ki"}
    all_labels = {**labels, "shoal.io/arch": facts.arch, "shoal.io/hostname": facts.hostname}
    return {
        "apiVersion": "shoal/v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "runtimes": list(facts.runtimes),
            "addresses": [{"type": "InternalIP", "address": facts.address},
                          {"type": "Hostname", "address": facts.hostname}],
            "nodeInfo": {"architecture": facts.arch, "operatingSystem": "linux", "kernelVersion": facts.kernel,
                         "agentVersion": __version__},
        },
    }


def metrics_annotations(bind: str, manifest: dict[str, Any]) -> dict[str, str | None]:
    """The Node annotation advertising ``--metrics-bind`` to the server's Prometheus discovery (None
    removes a stale one): the bound host, or the node's InternalIP when it binds every address."""
    host, sep, port = bind.rpartition(":")
    if not bind or not sep or not port.isdigit():
        return {METRICS_ADDRESS_ANNOTATION: None}
    host = host.strip("[]")
    if host in _ANY_ADDRESS:
        addresses = (manifest.get("status") or {}).get("addresses") or []
        host = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "127.0.0.1")
    return {METRICS_ADDRESS_ANNOTATION: f"[{host}]:{port}" if ":" in host else f"{host}:{port}"}
