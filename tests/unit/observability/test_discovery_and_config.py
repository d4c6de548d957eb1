"""Node discovery for Prometheus (HTTP SD JSON), the agent's advertised address, and the CLI's scrape config."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner

from shoal.agent.nodeinfo import METRICS_ADDRESS_ANNOTATION as AGENT_ANNOTATION
from shoal.agent.nodeinfo import metrics_annotations
from shoal.api.routes import create_app
from shoal.api.sd import METRICS_ADDRESS_ANNOTATION, node_targets, sd_routes
from shoal.cli.main import build_app
from shoal.cli.monitoring import scrape_config
from shoal.model import Node, NodePhase, NodeStatus, ObjectMeta
from shoal.model.node import NodeInfo
from shoal.store.fake import FakeStore


def _node(name: str, phase: NodePhase, address: str | None, zone: str = "") -> Node:
    labels = {"shoal.io/zone": zone} if zone else {}
    annotations = {METRICS_ADDRESS_ANNOTATION: address} if address is not None else {}
    return Node(metadata=ObjectMeta(name=name, labels=labels, annotations=annotations),
                status=NodeStatus(phase=phase, node_info=NodeInfo(architecture="arm64")))


def test_only_online_nodes_with_a_valid_address_are_targets() -> None:
    nodes = [_node("gw-2", NodePhase.ONLINE, "10.0.0.2:10249", zone="plant-a"),
             _node("gw-1", NodePhase.ONLINE, "10.0.0.1:10249"),
             _node("gw-3", NodePhase.OFFLINE, "10.0.0.3:10249"),
             _node("gw-4", NodePhase.ONLINE, None),
             _node("gw-5", NodePhase.ONLINE, "not-an-address"),
             _node("gw-6", NodePhase.ONLINE, "[fd00::6]:10249")]
    assert node_targets(nodes) == [
        {"targets": ["10.0.0.1:10249"], "labels": {"node": "gw-1", "zone": "", "arch": "arm64"}},
        {"targets": ["10.0.0.2:10249"], "labels": {"node": "gw-2", "zone": "plant-a", "arch": "arm64"}},
        {"targets": ["[fd00::6]:10249"], "labels": {"node": "gw-6", "zone": "", "arch": "arm64"}},
    ]


def test_discovery_endpoint_serves_the_http_sd_format() -> None:
    async def scenario() -> httpx.Response:
        store = FakeStore()
        await store.create(_node("gw-1", NodePhase.ONLINE, "127.0.0.1:10249", zone="z1"))
        asgi, _ = create_app(store, {"t": "admin"}.get, lambda names: None, lambda: dt.datetime.now(dt.UTC),
                             extra_routes=sd_routes())
        transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://shoal") as client:
            return await client.get("/api/v1/sd/nodes", headers={"Authorization": "Bearer t"})

    response = asyncio.run(scenario())
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == [{"targets": ["127.0.0.1:10249"], "labels": {"node": "gw-1", "zone": "z1",
                                                                          "arch": "arm64"}}]


def test_agent_advertises_where_its_metrics_are_reachable() -> None:
    manifest = {"status": {"addresses": [{"type": "InternalIP", "address": "10.1.2.3"},
                                         {"type": "Hostname", "address": "gw"}]}}
    assert AGENT_ANNOTATION == METRICS_ADDRESS_ANNOTATION
    assert metrics_annotations("127.0.0.1:9100", manifest) == {AGENT_ANNOTATION: "127.0.0.1:9100"}
    assert metrics_annotations("0.0.0.0:9100", manifest) == {AGENT_ANNOTATION: "10.1.2.3:9100"}
    assert metrics_annotations(":9100", manifest) == {AGENT_ANNOTATION: "10.1.2.3:9100"}
    assert metrics_annotations("[::1]:9100", manifest) == {AGENT_ANNOTATION: "[::1]:9100"}
    assert metrics_annotations("", manifest) == {AGENT_ANNOTATION: None}  # removes a stale one


def test_scrape_config_has_a_server_job_and_a_discovered_nodes_job() -> None:
    config = scrape_config("https://10.0.0.1:6443", "/etc/p/ca.crt", "/etc/p/token", interval="5s")
    server, nodes = config["scrape_configs"]
    assert server["job_name"] == "shoal-server" and server["scheme"] == "https"
    assert server["static_configs"][0]["targets"] == ["10.0.0.1:6443"]
    assert server["authorization"] == {"type": "Bearer", "credentials_file": "/etc/p/token"}
    assert server["tls_config"] == {"ca_file": "/etc/p/ca.crt"}
    sd = nodes["http_sd_configs"][0]
    assert sd["url"] == "https://10.0.0.1:6443/api/v1/sd/nodes"
    assert sd["tls_config"] == server["tls_config"] and sd["authorization"] == server["authorization"]
    assert config["global"]["scrape_interval"] == "5s"


def test_cli_writes_config_ca_and_token_files(tmp_path: Path) -> None:
    admin = tmp_path / "admin.yaml"
    admin.write_text(yaml.safe_dump({"server": "https://127.0.0.1:6443", "ca": "-----BEGIN CERTIFICATE-----\nx\n"
                                     "-----END CERTIFICATE-----\n", "token": "s3cret"}))
    out = tmp_path / "prom" / "prometheus.yml"
    out.parent.mkdir()
    args = ["--config", str(admin), "monitoring", "prometheus-config", "--out", str(out), "--scrape-interval", "2s"]
    result = CliRunner().invoke(build_app(args), args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(out.read_text())
    token_file = Path(config["scrape_configs"][0]["authorization"]["credentials_file"])
    ca_file = Path(config["scrape_configs"][0]["tls_config"]["ca_file"])
    assert token_file.read_text().strip() == "s3cret" and "BEGIN CERTIFICATE" in ca_file.read_text()
    assert token_file.parent == out.parent and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert config["global"]["scrape_interval"] == "2s"


def test_cli_rejects_a_bad_interval_and_a_config_without_token(tmp_path: Path) -> None:
    admin = tmp_path / "admin.yaml"
    admin.write_text(yaml.safe_dump({"server": "https://127.0.0.1:6443"}))
    base = ["--config", str(admin), "monitoring", "prometheus-config"]
    bad = CliRunner().invoke(build_app(base), [*base, "--scrape-interval", "fast"])
    assert bad.exit_code == 1 and '--scrape-interval "fast" is not a duration' in bad.output
    no_token = CliRunner().invoke(build_app(base), base)
    assert no_token.exit_code == 1 and "has no token" in no_token.output


def test_agent_registration_sets_and_clears_the_metrics_annotation() -> None:
    from types import SimpleNamespace

    from shoal.agent.agent import Agent
    from shoal.agent.nodeinfo import NodeFacts, node_manifest
    from shoal.client import AsyncClient, ClientConfig
    from shoal.client.fake import FakeApi

    facts = NodeFacts(cpu=2, memory_bytes=1 << 30, storage_bytes=1 << 34, arch="arm64", kernel="6.1",
                      hostname="gw-1", runtimes=("oci",), address="10.0.0.7")
    manifest = node_manifest("gw-1", facts, {})
    api = FakeApi()

    async def register(bind: str) -> dict[str, str]:
        agent = SimpleNamespace(name="gw-1", options=SimpleNamespace(node_manifest=manifest, metrics_bind=bind))
        config = ClientConfig(server="http://shoal", token=api.token)
        async with AsyncClient(config, transport=api.transport()) as client:
            await Agent._register(agent, client)  # type: ignore[arg-type]
            node = await client.get("Node", None, "gw-1")
        return dict(node["metadata"].get("annotations") or {})

    assert asyncio.run(register(":10249")) == {METRICS_ADDRESS_ANNOTATION: "10.0.0.7:10249"}  # created
    assert asyncio.run(register("127.0.0.1:9100")) == {METRICS_ADDRESS_ANNOTATION: "127.0.0.1:9100"}  # re-registered
    assert asyncio.run(register("")) == {}  # no longer served: no longer advertised
