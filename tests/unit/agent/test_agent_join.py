"""Joining: node credentials file, the /cacerts and /api/v1/join routes, and the agent's join client."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from litestar.testing import TestClient

from shoal.agent.identity import ca_sha256
from shoal.api.errors import ApiError, handle_api_error
from shoal.api.join import join_routes
from shoal.pki import CertificateAuthority, ca_hash
from shoal.pki.nodecreds import NodeCredentials


def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_node_tokens_are_stored_hashed_and_rotate_on_rejoin(tmp_path: Path) -> None:
    creds = NodeCredentials(tmp_path / "creds.json")
    first = creds.issue("gw-1")
    other = creds.issue("gw-2")
    assert creds.lookup(first) == "node:gw-1" and creds.lookup(other) == "node:gw-2"
    assert creds.lookup("nope") is None
    second = creds.issue("gw-1")
    assert creds.lookup(first) is None and creds.lookup(second) == "node:gw-1"
    text = (tmp_path / "creds.json").read_text()
    assert second not in text and "gw-1" in text
    assert stat.S_IMODE((tmp_path / "creds.json").stat().st_mode) == 0o600
    assert NodeCredentials(tmp_path / "creds.json").lookup(second) == "node:gw-1"  # survives a restart


def test_damaged_credentials_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "creds.json").write_text("[1, 2")
    with pytest.raises(ValueError, match=r"creds\.json"):
        NodeCredentials(tmp_path / "creds.json")


@pytest.fixture
def app(tmp_path: Path) -> tuple[TestClient[Litestar], CertificateAuthority, NodeCredentials]:
    ca = CertificateAuthority.load_or_create(tmp_path)
    creds = NodeCredentials(tmp_path / "creds.json")
    litestar = Litestar(route_handlers=join_routes(ca, "s3cret", creds),
                        exception_handlers={ApiError: handle_api_error})
    return TestClient(litestar), ca, creds


def test_cacerts_serves_the_ca_whose_hash_the_token_pins(app: tuple[TestClient[Litestar], CertificateAuthority,
                                                                     NodeCredentials]) -> None:
    client, ca, _ = app
    with client:
        response = client.get("/cacerts")
    assert response.status_code == 200
    assert ca_sha256(response.text) == ca_hash(ca.cert_pem)


def test_join_signs_the_csr_and_issues_a_node_token(app: tuple[TestClient[Litestar], CertificateAuthority,
                                                                NodeCredentials]) -> None:
    client, ca, creds = app
    with client:
        response = client.post("/api/v1/join", json={"nodeName": "gw-7", "csr": csr_pem()},
                               headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200, response.text
    body = response.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert "CN=node:gw-7" in cert.subject.rfc4514_string()
    assert cert.issuer == ca.cert.subject and body["ca"] == ca.cert_pem.decode()
    assert creds.lookup(body["token"]) == "node:gw-7"


@pytest.mark.parametrize(("headers", "body", "code", "field"), [
    ({"Authorization": "Bearer wrong"}, {"nodeName": "gw-1", "csr": "x"}, 401, None),
    ({}, {"nodeName": "gw-1", "csr": "x"}, 401, None),
    ({"Authorization": "Bearer s3cret"}, {"nodeName": "GW_1!", "csr": "x"}, 422, "nodeName"),
    ({"Authorization": "Bearer s3cret"}, {"nodeName": "gw-1", "csr": "not a pem"}, 422, "csr"),
    ({"Authorization": "Bearer s3cret"}, {"nodeName": "gw-1"}, 422, "csr"),
])
def test_join_failures_are_status_objects(app: tuple[TestClient[Litestar], CertificateAuthority, NodeCredentials],
                                          headers: dict[str, str], body: dict[str, str], code: int,
                                          field: str | None) -> None:
    client, _, creds = app
    with client:
        response = client.post("/api/v1/join", content=json.dumps(body), headers=headers)
    assert response.status_code == code
    status = response.json()
    assert status["kind"] == "Status" and status["code"] == code
    if field is not None:
        assert status["details"]["causes"][0]["field"] == field
        assert field in status["message"]
    assert creds.nodes() == []
