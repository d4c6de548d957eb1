"""Mutual TLS between agents and a real server: a node authenticates with its certificate alone,
certificates of an earlier join or of another CA are refused, and node certificates renew
themselves before they expire while the agent keeps heartbeating."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import ssl
import time
from pathlib import Path

import httpx
import pytest
from agentenv import AgentEnv, Server, free_port, kill_group, start_server, wait_until
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shoal.agent.identity import load_or_join


def node_client(server: Server, pem: Path | None, token: str = "") -> httpx.Client:
    context = ssl.create_default_context(cadata=(server.data_dir / "pki" / "ca.crt").read_text())
    if pem is not None:
        context.load_cert_chain(pem)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, verify=context, timeout=10, headers=headers)


def phase(http: httpx.Client, node: str = "edge-1") -> str:
    response = http.get(f"/api/v1/nodes/{node}")
    return str(response.json().get("status", {}).get("phase", "")) if response.status_code == 200 else ""


def foreign_pem(tmp_path: Path, join_id: str) -> Path:
    """A node certificate with the right names, signed by a CA the server never saw."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal-ca")])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node:edge-1"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "shoal:nodes"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"join-{join_id}")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    path = tmp_path / "foreign.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_certificates_of_an_earlier_join_or_another_ca_are_refused(tmp_path: Path, server: Server) -> None:
    first = load_or_join(tmp_path / "first", server.url, server.join_token, "edge-1")
    with node_client(server, first.pem_path) as http:
        assert http.get("/api/v1/pods").status_code == 200
        denied = http.delete("/api/v1/namespaces/default")  # the certificate speaks for node edge-1, no more
        assert denied.status_code == 403 and 'node "edge-1"' in denied.json()["message"]
    with node_client(server, None) as http:
        assert http.get("/api/v1/pods").status_code == 401

    # Joining again under the same name retires the first join's certificate and token.
    second = load_or_join(tmp_path / "second", server.url, server.join_token, "edge-1")
    with node_client(server, first.pem_path) as http:
        refused = http.get("/api/v1/pods")
        assert refused.status_code == 401 and refused.json()["reason"] == "Unauthorized"
    with node_client(server, None, first.token) as http:
        assert http.get("/api/v1/pods").status_code == 401
    with node_client(server, second.pem_path) as http:
        assert http.get("/api/v1/pods").status_code == 200

    # A certificate from another CA never gets past the TLS handshake.
    join_id = json.loads((server.data_dir / "node-credentials.json").read_text())["joins"]["edge-1"]
    with node_client(server, foreign_pem(tmp_path, join_id)) as http, pytest.raises(httpx.TransportError):
        http.get("/api/v1/pods")


def test_agent_runs_on_its_certificate_alone(agent_env: AgentEnv, server: Server) -> None:
    agent = agent_env.start(token=server.join_token)
    with server.http() as http:
        wait_until(lambda: phase(http) == "Online", 30, "node Online")
        kill_group(agent)
        wait_until(lambda: phase(http) == "Offline", 30, "node Offline after the agent stopped")

        # No token left: the certificate (node.pem) is the node's only credential.
        path = agent_env.data_dir / "identity.json"
        stored = json.loads(path.read_text())
        assert stored["token"] and stored["certNotAfter"]
        path.write_text(json.dumps({**stored, "token": ""}))
        restarted = agent_env.start()
        wait_until(lambda: phase(http) == "Online", 30, f"node Online again: {agent_env.logs()}")
        assert restarted.poll() is None
        assert "401" not in agent_env.logs()


def test_certificates_renew_before_they_expire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_NODE_CERT_SECONDS", "20")
    server = start_server(tmp_path / "server", free_port(), tmp_path / "server.log")
    env = AgentEnv(tmp_path, server, tmp_path / "agent", tmp_path / "runc", f"/shoal-renew-{os.getpid()}")
    try:
        agent = env.start(token=server.join_token)
        with server.http() as http:
            wait_until(lambda: phase(http) == "Online", 30, "node Online")
            certs = {(env.data_dir / "node.crt").read_bytes()}
            started, online_checks = time.monotonic(), 0
            while len(certs) < 4 and time.monotonic() - started < 60:  # three renewals: past two expiries
                assert phase(http) == "Online", env.logs()
                online_checks += 1
                certs.add((env.data_dir / "node.crt").read_bytes())
                time.sleep(0.5)
            assert len(certs) >= 4, f"only {len(certs) - 1} renewal(s) in 60 s:\n{env.logs()}"
            assert time.monotonic() - started > 20  # the first certificate has expired by now
            wait_until(lambda: phase(http) == "Online", 10, "node still Online")
            events = http.get("/api/v1/namespaces/default/events").json()["items"]
            assert not [e for e in events if e.get("reason") == "NodeOffline"], events
        current = x509.load_pem_x509_certificate((env.data_dir / "node.crt").read_bytes())
        assert current.not_valid_after_utc - current.not_valid_before_utc < dt.timedelta(seconds=30)
        assert "renewed its certificate" in env.logs()
        assert agent.poll() is None
        # The renewal made its key in a child process: the agent never loaded cryptography.
        assert "cryptography" not in Path(f"/proc/{agent.pid}/maps").read_text()
        agent.send_signal(signal.SIGTERM)
    finally:
        env.cleanup()
        kill_group(server.process)
