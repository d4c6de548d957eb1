"""The EndpointRegistration kind: an instance that is not a pod (a PLC, a camera, an external
service) registered behind a Service with a time-to-live, discoverable exactly like pods.

The registrant renews it by writing ``status.renewTime`` (a heartbeat, like a Kubernetes Lease);
creating the object is the first heartbeat. The registrations controller deletes it when no
heartbeat arrived within ``spec.ttlSeconds`` and writes ``status.expiresAt``; the endpoints
controller lists it in its Service's Endpoints while it lives. Shapes and their own checks only:
each part checks itself when decoded (``__post_init__``), so a bad service name, address, port or
TTL is refused with the path of the field and the fix. No clock, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.endpoints import MAX_WEIGHT
from shoal.model.meta import ObjectMeta

DEFAULT_TTL_SECONDS = 30
MAX_TTL_SECONDS = 86400
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _is_rfc3339(text: str) -> bool:
    if "T" not in text.upper():
        return False
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return moment.tzinfo is not None


class RegistrationProtocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


def _port_problem(port: int) -> str | None:
    return None if 1 <= port <= 65535 else f"{port} is not a port; use 1-65535"


class RegistrationPort(Spec, frozen=True, kw_only=True):
    """A port the instance listens on; ``name`` is the Service port it serves (Services with several ports)."""

    port: int
    name: str = ""
    protocol: RegistrationProtocol = RegistrationProtocol.TCP

    def __post_init__(self) -> None:
        if problem := _port_problem(self.port):
            raise ValueError(f"port {problem}")
        if self.name and (len(self.name) > 15 or not _PORT_NAME.match(self.name)):
            raise ValueError(f'name "{self.name}" is not a port name; use the Service port\'s name: at most 15 '
                             'lower-case letters, digits and "-"')


class EndpointRegistrationSpec(Spec, frozen=True, kw_only=True):
    """``service`` (same namespace) gets ``address`` as an endpoint on ``port`` — or on ``ports``, one per
    named Service port — while heartbeats arrive at least every ``ttlSeconds``."""

    service: str
    address: str
    port: int | None = None
    ports: list[RegistrationPort] = msgspec.field(default_factory=list)
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    weight: int | None = None

    def __post_init__(self) -> None:
        if not self.service or len(self.service) > 63 or not _DNS_LABEL.match(self.service):
            fixed = re.sub(r"[^a-z0-9-]+", "-", self.service.lower()).strip("-")[:63]
            hint = f'; did you mean "{fixed}"?' if fixed and fixed != self.service else ""
            raise ValueError(f'service "{self.service}" is not a Service name: use lower-case letters, digits '
                             f'and "-", starting and ending with a letter or digit{hint}')
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ValueError(f'address "{self.address}" is not an IP address; write an IPv4 or IPv6 literal like '
                             "192.0.2.7 or 2001:db8::7 (host names are not resolved)") from None
        if self.port is not None and (problem := _port_problem(self.port)):
            raise ValueError(f"port {problem}")
        if self.port is not None and self.ports:
            raise ValueError("give port or ports, not both; ports: [{name: modbus, port: 502}] when the Service "
                             "has several ports")
        if self.port is None and not self.ports:
            raise ValueError("port is required; e.g. port: 502 (or ports: [{name: modbus, port: 502}])")
        keys = [(p.name, p.protocol) for p in self.ports]
        if len(set(keys)) != len(keys):
            raise ValueError("ports: each name and protocol at most once")
        if not 1 <= self.ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttlSeconds {self.ttl_seconds} is out of range; use 1-{MAX_TTL_SECONDS} "
                             f"(default {DEFAULT_TTL_SECONDS}) and heartbeat about every ttlSeconds/3")
        if self.weight is not None and not 0 <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"weight {self.weight} is out of range; use a whole number 0-{MAX_WEIGHT}")

    def instance_ports(self) -> list[RegistrationPort]:
        """The ports as a list: ``port`` becomes one unnamed TCP port."""
        return [RegistrationPort(port=self.port)] if self.port is not None else list(self.ports)


class EndpointRegistrationStatus(Spec, frozen=True, kw_only=True):
    """``renewTime`` is the last heartbeat (RFC 3339, written by the registrant); ``expiresAt`` is when the
    registration goes without another one (written by the registrations controller, server clock)."""

    renew_time: str = ""
    expires_at: str = ""

    def __post_init__(self) -> None:
        for wire, value in (("renewTime", self.renew_time), ("expiresAt", self.expires_at)):
            if value and not _is_rfc3339(value):
                raise ValueError(f'{wire} "{value}" is not an RFC 3339 time; write it like 2026-11-23T14:05:00Z')


class EndpointRegistration(Object, frozen=True, kw_only=True, tag="EndpointRegistration"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: EndpointRegistrationSpec
    status: EndpointRegistrationStatus = msgspec.field(default_factory=EndpointRegistrationStatus)
