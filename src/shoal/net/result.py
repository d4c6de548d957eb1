"""Parsing of CNI results (what a plugin prints on ADD) into the pod's address and gateway.

Owns ``CniResult`` and ``parse_result`` for every result shape of the CNI spec: 0.1.0/0.2.0
(``ip4``/``ip6`` objects) and 0.3.0 through 1.0.0 (``interfaces`` plus ``ips`` whose
``interface`` indexes the interface list). Pure: it must not run plugins or touch the host.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from shoal.net.protocol import NetworkError

__all__ = ["CniIP", "CniInterface", "CniResult", "ResultError", "parse_result"]

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ResultError(NetworkError):
    """A CNI result that does not say which address the pod got."""


@dataclass(frozen=True, slots=True)
class CniInterface:
    name: str
    mac: str = ""
    sandbox: str = ""


@dataclass(frozen=True, slots=True)
class CniIP:
    address: IPInterface
    gateway: IPAddress | None = None
    interface: int | None = None


@dataclass(frozen=True, slots=True)
class CniResult:
    cni_version: str
    interfaces: tuple[CniInterface, ...]
    ips: tuple[CniIP, ...]

    def pod_ip(self, ifname: str) -> CniIP:
        """The pod's address on ``ifname``: IPv4 first, else IPv6; an IP whose interface is not
        given counts as the pod's (old results and some plugins omit it)."""

        def on_pod_interface(ip: CniIP) -> bool:
            if ip.interface is None:
                return True
            if not 0 <= ip.interface < len(self.interfaces):
                return False
            iface = self.interfaces[ip.interface]
            return iface.name == ifname and bool(iface.sandbox)

        candidates = [ip for ip in self.ips if on_pod_interface(ip)]
        if not candidates:
            raise ResultError(
                f"the CNI result (version {self.cni_version}) has no address on the pod interface "
                f"{ifname!r}; check the IPAM section of the node's conflist"
            )
        candidates.sort(key=lambda ip: ip.address.version)
        return candidates[0]


def _interface(value: Any, where: str) -> IPInterface:
    try:
        return ipaddress.ip_interface(str(value))
    except ValueError as exc:
        raise ResultError(
            f"CNI result {where}: {value!r} is not an address with prefix like 10.77.1.2/24"
        ) from exc


def _address(value: Any, where: str) -> IPAddress | None:
    if value in (None, ""):
        return None
    try:
        return ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise ResultError(f"CNI result {where}: {value!r} is not an IP address") from exc


def parse_result(raw: Any) -> CniResult:
    """Parse a plugin's ADD output (already JSON-decoded)."""
    if not isinstance(raw, dict):
        raise ResultError(f"a CNI result must be a JSON object, got {type(raw).__name__}")
    version = str(raw.get("cniVersion", ""))
    if "ips" not in raw and ("ip4" in raw or "ip6" in raw):
        ips = []
        for key in ("ip4", "ip6"):
            block = raw.get(key)
            if isinstance(block, dict):
                ips.append(
                    CniIP(
                        _interface(block.get("ip"), f"{key}.ip"),
                        _address(block.get("gateway"), f"{key}.gateway"),
                    )
                )
        return CniResult(version or "0.2.0", (), tuple(ips))
    interfaces = []
    for i, item in enumerate(raw.get("interfaces") or []):
        if not isinstance(item, dict) or not item.get("name"):
            raise ResultError(f"CNI result interfaces[{i}]: needs a name")
        interfaces.append(
            CniInterface(str(item["name"]), str(item.get("mac", "")), str(item.get("sandbox", "")))
        )
    ips = []
    for i, item in enumerate(raw.get("ips") or []):
        if not isinstance(item, dict):
            raise ResultError(f"CNI result ips[{i}]: must be an object")
        index = item.get("interface")
        if index is not None and not isinstance(index, int):
            raise ResultError(f"CNI result ips[{i}].interface: {index!r} is not an index into interfaces")
        ips.append(
            CniIP(
                _interface(item.get("address"), f"ips[{i}].address"),
                _address(item.get("gateway"), f"ips[{i}].gateway"),
                index,
            )
        )
    return CniResult(version, tuple(interfaces), tuple(ips))
