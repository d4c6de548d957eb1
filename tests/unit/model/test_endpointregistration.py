"""EndpointRegistration decoding: the MANIFESTS shape is valid, defaults apply, and every bad field is
refused with its path and the fix (never a traceback)."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.model import EndpointRegistration, ValidationError, decode_object, lookup


def manifest(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "shoal/v1", "kind": "EndpointRegistration",
                           "metadata": {"name": "plc-7", "namespace": "default"}, "spec": spec}
    if status is not None:
        out["status"] = status
    return out


def test_the_manifests_shape_decodes_with_defaults() -> None:
    obj = decode_object(manifest({"service": "plc", "address": "192.0.2.7", "port": 502, "ttlSeconds": 30}))
    assert isinstance(obj, EndpointRegistration)
    assert (obj.spec.service, obj.spec.address, obj.spec.port, obj.spec.ttl_seconds) == ("plc", "192.0.2.7", 502, 30)
    defaulted = decode_object(manifest({"service": "plc", "address": "2001:db8::7", "port": 502}))
    assert isinstance(defaulted, EndpointRegistration) and defaulted.spec.ttl_seconds == 30
    named = decode_object(manifest({"service": "plc", "address": "192.0.2.7", "weight": 5,
                                    "ports": [{"name": "modbus", "port": 502}, {"name": "web", "port": 80}]}))
    assert isinstance(named, EndpointRegistration)
    assert [(p.name, p.port, p.protocol) for p in named.spec.instance_ports()] == [("modbus", 502, "TCP"),
                                                                                  ("web", 80, "TCP")]


def test_kind_registry_names() -> None:
    info = lookup("epreg")
    assert (info.kind, info.plural, info.namespaced, info.has_status) == (
        "EndpointRegistration", "endpointregistrations", True, True)
    assert lookup("endpointregistration") is info


@pytest.mark.parametrize(("spec", "status", "expected"), [
    ({"service": "PLC_1", "address": "192.0.2.7", "port": 502}, None, 'service "PLC_1" is not a Service name'),
    ({"service": "plc", "address": "plc.local", "port": 502}, None, "is not an IP address; write an IPv4 or IPv6"),
    ({"service": "plc", "address": "192.0.2.7"}, None, "port is required; e.g. port: 502"),
    ({"service": "plc", "address": "192.0.2.7", "port": 70000}, None, "port 70000 is not a port; use 1-65535"),
    ({"service": "plc", "address": "192.0.2.7", "port": 502, "ports": [{"port": 502}]}, None,
     "give port or ports, not both"),
    ({"service": "plc", "address": "192.0.2.7", "port": 502, "ttlSeconds": 0}, None, "ttlSeconds 0 is out of range"),
    ({"service": "plc", "address": "192.0.2.7", "port": 502, "ttlSeconds": 86401}, None, "use 1-86400"),
    ({"service": "plc", "address": "192.0.2.7", "port": 502, "weight": 1001}, None, "weight 1001 is out of range"),
    ({"service": "plc", "address": "192.0.2.7", "ports": [{"name": "Modbus", "port": 502}]}, None,
     "spec.ports[0]: name \"Modbus\" is not a port name"),
    ({"service": "plc", "address": "192.0.2.7", "ports": [{"port": 502, "protocol": "ICMP"}]}, None,
     "spec.ports[0].protocol: invalid value"),
    ({"service": "plc", "address": "192.0.2.7", "port": 502}, {"renewTime": "yesterday"},
     'status: renewTime "yesterday" is not an RFC 3339 time'),
    ({"service": "plc", "adress": "192.0.2.7", "port": 502}, None, 'spec.adress: unknown field "adress"; did you mean'),
])
def test_bad_fields_are_named_with_the_fix(spec: dict[str, Any], status: dict[str, Any] | None,
                                           expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_object(manifest(spec, status))
    assert expected in str(caught.value)


def test_rfc3339_status_times_are_accepted() -> None:
    obj = decode_object(manifest({"service": "plc", "address": "192.0.2.7", "port": 502},
                                 {"renewTime": "2026-11-23T14:05:00Z", "expiresAt": "2026-11-23T14:05:30.250000Z"}))
    assert isinstance(obj, EndpointRegistration) and obj.status.renew_time == "2026-11-23T14:05:00Z"
