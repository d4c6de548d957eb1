"""Node certificates: what the CA signs (join id, lifetime), which client certificates authenticate
a node, when an agent renews, and a client picking up a renewed certificate."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shoal.agent.identity import NodeIdentity, renew_delay
from shoal.api.auth import TokenAuth
from shoal.client.config import ClientCertificate, ClientConfig
from shoal.pki import CertificateAuthority
from shoal.pki.nodecreds import NodeCredentials
from shoal.server.main import node_cert_lifetime


def key_and_csr() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, csr.public_bytes(serialization.Encoding.PEM)


def fields(node: str, unit: str, org: str = "shoal:nodes") -> dict[str, Any]:
    """What ssl's getpeercert() gives for a node certificate."""
    return {"subject": ((("commonName", f"node:{node}"),), (("organizationName", org),),
                        (("organizationalUnitName", unit),))}


def test_node_certificates_carry_the_join_id_and_the_lifetime(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    _, csr = key_and_csr()
    signed = ca.sign_node_csr(csr, "gw-1", "abc123", dt.timedelta(seconds=20))
    cert = x509.load_pem_x509_certificate(signed.pem)
    names = {a.oid: a.value for a in cert.subject}
    assert names[NameOID.COMMON_NAME] == "node:gw-1" and names[NameOID.ORGANIZATIONAL_UNIT_NAME] == "join-abc123"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(seconds=22)  # 10 % clock skew
    assert (signed.not_before, signed.not_after) == (cert.not_valid_before_utc, cert.not_valid_after_utc)
    year = x509.load_pem_x509_certificate(ca.sign_csr(csr, "gw-1", "abc123"))
    assert year.not_valid_after_utc - year.not_valid_before_utc == dt.timedelta(days=365, minutes=5)
    with pytest.raises(ValueError, match="lifetime"):
        ca.sign_node_csr(csr, "gw-1", "abc123", dt.timedelta(0))


def test_only_certificates_of_the_current_join_authenticate(tmp_path: Path) -> None:
    creds = NodeCredentials(tmp_path / "creds.json")
    creds.issue("gw-1", "first")
    assert creds.peer_subject(fields("gw-1", "join-first")) == "node:gw-1"
    assert creds.peer_subject(fields("gw-1", "join-other")) is None
    assert creds.peer_subject(fields("gw-1", "join-first", org="acme")) is None
    assert creds.peer_subject(fields("gw-2", "join-first")) is None  # never joined
    assert creds.peer_subject({}) is None
    creds.issue("gw-1", "second")  # re-join: the first join's certificates stop working
    assert creds.peer_subject(fields("gw-1", "join-first")) is None
    assert NodeCredentials(tmp_path / "creds.json").peer_subject(fields("gw-1", "join-second")) == "node:gw-1"
    assert creds.revoke("gw-1") and creds.peer_subject(fields("gw-1", "join-second")) is None


def test_credentials_written_before_join_ids_still_load(tmp_path: Path) -> None:
    creds = NodeCredentials(tmp_path / "creds.json")
    token = creds.issue("gw-1")
    data = json.loads((tmp_path / "creds.json").read_text())
    (tmp_path / "creds.json").write_text(json.dumps(data["tokens"]))  # the old flat layout
    old = NodeCredentials(tmp_path / "creds.json")
    assert old.lookup(token) == "node:gw-1" and old.join_id("gw-1") is None


def run_auth(auth: TokenAuth, scope: dict[str, Any]) -> tuple[int, str | None]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["subject"] = scope["state"]["subject"]
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    auth.app = app
    asyncio.run(auth(scope, receive, send))
    return seen["status"], seen.get("subject")


def test_a_request_authenticates_with_its_client_certificate_or_its_token(tmp_path: Path) -> None:
    creds = NodeCredentials(tmp_path / "creds.json")
    token = creds.issue("gw-1", "j1")
    auth = TokenAuth(lambda _: None, lambda t: {"admin-token": "admin"}.get(t) or creds.lookup(t),
                     peer=creds.peer_subject)

    def scope(headers: list[tuple[bytes, bytes]], cert: dict[str, Any] | None) -> dict[str, Any]:
        extensions = {"tls": {"client_cert_fields": cert}} if cert else {}
        return {"type": "http", "path": "/api/v1/pods", "headers": headers, "extensions": extensions}

    assert run_auth(auth, scope([], fields("gw-1", "join-j1"))) == (200, "node:gw-1")
    assert run_auth(auth, scope([], fields("gw-1", "join-old"))) == (401, None)
    assert run_auth(auth, scope([], None)) == (401, None)
    assert run_auth(auth, scope([(b"authorization", f"Bearer {token}".encode())], None)) == (200, "node:gw-1")
    # A bearer token, when sent, decides alone: the admin over a node's connection is the admin.
    assert run_auth(auth, scope([(b"authorization", b"Bearer admin-token")], fields("gw-1", "join-j1"))) == \
        (200, "admin")
    assert run_auth(auth, scope([(b"authorization", b"Bearer wrong")], fields("gw-1", "join-j1"))) == (401, None)


def identity(not_before: dt.datetime | None, not_after: dt.datetime | None, tmp_path: Path) -> NodeIdentity:
    return NodeIdentity("gw-1", "tok", "https://127.0.0.1:1", "", tmp_path, not_before, not_after,
                        ClientCertificate(tmp_path / "node.pem"))


def test_agents_renew_when_a_third_of_the_lifetime_is_left(tmp_path: Path) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    node = identity(start, start + dt.timedelta(days=300), tmp_path)
    assert renew_delay(node, start) == dt.timedelta(days=200).total_seconds()
    assert renew_delay(node, start + dt.timedelta(days=250)) == 0
    assert renew_delay(identity(None, None, tmp_path), start) == 0  # validity unknown: renew now
    assert node.cert_usable(start + dt.timedelta(days=1)) and not node.cert_usable(start + dt.timedelta(days=301))
    expired = node.client_config(now=start + dt.timedelta(days=301))
    assert expired.client_cert is None and expired.token == "tok"  # the token is the fallback
    assert node.client_config(now=start).client_cert is node.certificate


def test_a_reloaded_certificate_is_presented_on_new_connections(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    pem = tmp_path / "node.pem"

    def write(join_id: str) -> None:
        key, csr = key_and_csr()
        pem.write_bytes(key + ca.sign_csr(csr, "gw-1", join_id))

    write("one")
    cert = ClientCertificate(pem)
    config = ClientConfig(server="https://127.0.0.1:1", ca=ca.cert_pem.decode(), client_cert=cert)
    context = config.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    write("two")
    assert cert.reload() == 1
    # The context now holds the new chain: a TLS server would see join-two; check via a loopback handshake.
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert, server_key = ca.issue_server_cert(tmp_path, ["127.0.0.1"])
    server_ctx.load_cert_chain(server_cert, server_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    client_in, server_in = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_out, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    subject = dict(pair for rdn in server.getpeercert()["subject"] for pair in rdn)
    assert subject["organizationalUnitName"] == "join-two"


def test_node_cert_lifetime_takes_seconds_from_the_environment() -> None:
    assert node_cert_lifetime(365, {}) == dt.timedelta(days=365)
    assert node_cert_lifetime(365, {"SHOAL_NODE_CERT_SECONDS": "20"}) == dt.timedelta(seconds=20)
    with pytest.raises(ValueError, match="SHOAL_NODE_CERT_SECONDS"):
        node_cert_lifetime(365, {"SHOAL_NODE_CERT_SECONDS": "soon"})
