"""Endpoint registrations against a real server: a registered address shows up in its Service's
Endpoints, heartbeats keep it there past its TTL, and when they stop it is removed from the Endpoints
and deleted within ttl + 2 s, with an Expired Event."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from tests.conftest import RunningServer, wait_for

NS = "/api/v1/namespaces/default"
TTL = 3
REGISTRATION = {"apiVersion": "shoal/v1", "kind": "EndpointRegistration", "metadata": {"name": "plc-7"},
                "spec": {"service": "plc", "address": "192.0.2.7", "port": 502, "ttlSeconds": TTL}}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def addresses(http: httpx.Client, service: str) -> list[str]:
    response = http.get(f"{NS}/endpoints/{service}")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return [a["ip"] for s in response.json().get("subsets", []) for a in s.get("addresses", [])]


def heartbeat(http: httpx.Client, index: int) -> dict[str, Any]:
    """Alternate the two documented forms: PUT of the status subresource, and a merge patch."""
    if index % 2:
        response = http.patch(f"{NS}/endpointregistrations/plc-7", json={"status": {"renewTime": now()}},
                              headers={"Content-Type": "application/merge-patch+json"})
    else:
        response = http.put(f"{NS}/endpointregistrations/plc-7/status",
                            json={**REGISTRATION, "status": {"renewTime": now()}})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_registration_lives_on_heartbeats_and_expires_without_them(server: RunningServer) -> None:
    with server.http() as http:
        created = http.post(f"{NS}/services", json={"apiVersion": "shoal/v1", "kind": "Service",
                                                   "metadata": {"name": "plc"},
                                                   "spec": {"ports": [{"name": "modbus", "port": 502}]}})
        assert created.status_code == 201, created.text
        registered = http.post(f"{NS}/endpointregistrations", json=REGISTRATION)
        assert registered.status_code == 201, registered.text
        wait_for(lambda: addresses(http, "plc") == ["192.0.2.7"], timeout=10, message="registration in Endpoints")
        endpoints = http.get(f"{NS}/endpoints/plc").json()
        [address] = endpoints["subsets"][0]["addresses"]
        assert address["targetRef"]["kind"] == "EndpointRegistration" and address["targetRef"]["name"] == "plc-7"
        assert endpoints["subsets"][0]["ports"] == [{"name": "modbus", "port": 502}]

        started = time.monotonic()
        index = 0
        while time.monotonic() - started < 6:  # twice the TTL: only heartbeats keep it alive
            body = heartbeat(http, index)
            assert body["status"]["renewTime"]
            assert addresses(http, "plc") == ["192.0.2.7"]
            index += 1
            time.sleep(1.0)
        assert index >= 5
        last = time.monotonic()
        current = http.get(f"{NS}/endpointregistrations/plc-7").json()
        assert current["status"]["renewTime"] and current["status"].get("expiresAt")

        def gone() -> bool:
            return (http.get(f"{NS}/endpointregistrations/plc-7").status_code == 404
                    and addresses(http, "plc") == [])

        wait_for(gone, timeout=TTL + 3, interval=0.1, message="expired registration removed")
        assert time.monotonic() - last <= TTL + 2, "removed later than ttl + 2 s after the last heartbeat"
        events = http.get(f"{NS}/events").json()["items"]
        expired = [e for e in events if e["reason"] == "Expired" and e["involvedObject"]["name"] == "plc-7"]
        assert len(expired) == 1 and expired[0]["type"] == "Warning"
        assert "ttlSeconds 3" in expired[0]["message"] and "Service plc" in expired[0]["message"]


def test_bad_registration_is_refused_with_the_field_and_the_fix(server: RunningServer) -> None:
    with server.http() as http:
        bad = {**REGISTRATION, "spec": {"service": "plc", "address": "plc.local", "port": 502}}
        response = http.post(f"{NS}/endpointregistrations", json=bad)
        assert response.status_code == 422, response.text
        assert "is not an IP address; write an IPv4 or IPv6 literal" in response.text
    shown = server.cli("get", "epreg")
    assert shown.returncode == 0, shown.stderr
