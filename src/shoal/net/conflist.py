"""The node's default CNI conflist: bridge ``shoal0`` with host-local IPAM over the node's podCIDR.

Owns ``render_conflist`` (pure: the JSON shoal writes) and ``write_conflist`` (writes it
atomically). The chain is bridge (isGateway, no masquerade by default, hairpin), portmap for
hostPort, bandwidth for per-pod rate limits and loopback. A file shoal wrote carries
``"shoalManaged": true``; a file without it belongs to the user and is never overwritten, so a
user may replace the chain with other CNI plugins. CHECK is disabled in the default file because
Debian's plugins 1.1.1 cannot run it (bandwidth panics on a pod without limits; portmap fails on
an IPv4-only pod when ip6tables exists); a user file with newer plugins may enable it. It must
not run plugins or touch the network.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from shoal.net.cni import ConflistError

__all__ = ["BRIDGE_NAME", "MANAGED_KEY", "NETWORK_NAME", "render_conflist", "write_conflist"]

NETWORK_NAME = "shoal"
BRIDGE_NAME = "shoal0"
MANAGED_KEY = "shoalManaged"
CNI_VERSION = "1.0.0"


def _pod_network(pod_cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        network = ipaddress.ip_network(pod_cidr, strict=True)
    except ValueError as exc:
        raise ConflistError(
            "node",
            "spec.podCIDR",
            f"{pod_cidr!r} is not a network like 10.77.1.0/24 "
            f"({exc}); the server assigns it when the node registers",
        ) from exc
    if network.num_addresses < 4:
        raise ConflistError(
            "node",
            "spec.podCIDR",
            f"{pod_cidr} leaves no room for a gateway and pods; "
            "use a /30 or larger (the default is a /24 per node)",
        )
    return network


def render_conflist(
    pod_cidr: str,
    ipam_dir: Path,
    *,
    bridge: str = BRIDGE_NAME,
    ip_masq: bool = False,
    mtu: int | None = None,
    name: str = NETWORK_NAME,
) -> dict[str, Any]:
    """The conflist shoal uses for ``pod_cidr``; host-local keeps its leases under ``ipam_dir``."""
    network = _pod_network(pod_cidr)
    if not 1 <= len(bridge) <= 15 or "/" in bridge or " " in bridge:
        raise ConflistError("net", "bridge", f"{bridge!r} is not a Linux interface name (1-15 characters)")
    default_route = "0.0.0.0/0" if network.version == 4 else "::/0"
    bridge_conf: dict[str, Any] = {
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": ip_masq,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "dataDir": str(ipam_dir),
            "ranges": [[{"subnet": str(network)}]],
            "routes": [{"dst": default_route}],
        },
    }
    if mtu is not None:
        bridge_conf["mtu"] = mtu
    return {
        "cniVersion": CNI_VERSION,
        "name": name,
        MANAGED_KEY: True,
        "disableCheck": True,
        "plugins": [
            bridge_conf,
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
            {"type": "loopback"},
        ],
    }


def write_conflist(path: Path, pod_cidr: str, ipam_dir: Path, **options: Any) -> bool:
    """Write the default conflist to ``path`` unless the file there is the user's own.

    Returns True when shoal's file was written (or rewritten for a new podCIDR), False when a
    user-owned file was left alone."""
    if path.exists():
        try:
            current = json.loads(path.read_bytes())
        except (OSError, ValueError):
            current = None
        if not (isinstance(current, dict) and current.get(MANAGED_KEY) is True):
            return False
    doc = render_conflist(pod_cidr, ipam_dir, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return True
