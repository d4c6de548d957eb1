"""`shoal port-forward` argument handling without a server: port mappings, and how svc/NAME becomes a
Ready pod and its target port (Endpoints first, then the Service's selector; named targetPorts)."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.cli.common import EXIT_USAGE, CliError
from shoal.cli.portforward import Mapping, _resolve, parse_mapping
from shoal.client.errors import ApiError


@pytest.mark.parametrize(("text", "expected"), [("8080", Mapping(0, 8080)), (":80", Mapping(0, 80)),
                                                ("5000:80", Mapping(5000, 80)), ("0:443", Mapping(0, 443))])
def test_mappings(text: str, expected: Mapping) -> None:
    assert parse_mapping(text) == expected


@pytest.mark.parametrize("text", ["http", "80:", "1:2:3", "70000", "0", "-1:80", "5000:99999"])
def test_bad_mappings_name_the_mapping(text: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_mapping(text)
    assert f'port mapping "{text}"' in str(caught.value) and caught.value.code == EXIT_USAGE


def _pod(name: str, ready: bool, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class _Client:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.selectors: list[str | None] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.objects[(kind, name)]
        except KeyError:
            raise ApiError(404, "NotFound", f'{kind} "{name}" not found') from None

    def list(self, kind: str, namespace: str, label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        self.selectors.append(label_selector)
        return [o for (k, _), o in sorted(self.objects.items()) if k == kind], "1"


SERVICE = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web", "tier": "front"},
                                                 "ports": [{"port": 80, "targetPort": "http"},
                                                           {"port": 81, "targetPort": 9000}, {"port": 82}]}}


def test_service_uses_a_ready_endpoint_and_maps_ports() -> None:
    endpoints = {"subsets": [{"addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "a-stale"}},
                                            {"ip": "10.0.0.2", "targetRef": {"kind": "Pod", "name": "b-ready"}}]}]}
    client = _Client({("services", "web"): SERVICE, ("endpoints", "web"): endpoints,
                      ("pods", "a-stale"): _pod("a-stale", False), ("pods", "b-ready"): _pod("b-ready", True)})
    pod, mappings = _resolve(client, "default", "svc/web", [Mapping(0, 80), Mapping(7000, 81), Mapping(0, 82)])
    assert pod == "b-ready"
    assert mappings == [Mapping(0, 8080), Mapping(7000, 9000), Mapping(0, 82)]
    assert client.selectors == []


def test_service_without_endpoints_falls_back_to_its_selector() -> None:
    client = _Client({("services", "web"): SERVICE, ("pods", "a"): _pod("a", False, "Pending"),
                      ("pods", "b"): _pod("b", True)})
    assert _resolve(client, "default", "service/web", [Mapping(0, 80)]) == ("b", [Mapping(0, 8080)])
    assert client.selectors == ["app=web,tier=front"]


def test_service_errors_say_what_to_check() -> None:
    client = _Client({("services", "web"): SERVICE, ("pods", "a"): _pod("a", False)})
    with pytest.raises(CliError, match='service "web" has no Ready pod'):
        _resolve(client, "default", "svc/web", [Mapping(0, 80)])
    client = _Client({("services", "web"): SERVICE, ("pods", "b"): _pod("b", True)})
    with pytest.raises(CliError, match='service "web" has no port 8080; its ports are 80, 81, 82'):
        _resolve(client, "default", "svc/web", [Mapping(0, 8080)])
    with pytest.raises(CliError, match="give a pod"):
        _resolve(client, "default", "deploy/web", [Mapping(0, 80)])
    assert _resolve(client, "default", "pod/b", [Mapping(1, 2)]) == ("b", [Mapping(1, 2)])
