"""The node's identity: joining the cluster once and persisting the result in the data dir.

``load_or_join`` parses the join token, fetches ``/cacerts`` without verification, checks the
CA's sha256 DER hash against the token's pin, makes an EC P-256 key and CSR, calls
``POST /api/v1/join`` and writes key, certificate, CA, node token and node name to the data dir
(0600). Restarted on the same dir it is the same node and does not join again. ``cryptography``
is imported only when a join happens. It must not register the Node or talk to the runtime.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec

from shoal.client import ClientConfig

if TYPE_CHECKING:
    from shoal.pki.ca import JoinToken

__all__ = ["IDENTITY_FILE", "JoinError", "JoinRefused", "NodeIdentity", "load_identity", "load_or_join"]

IDENTITY_FILE = "identity.json"


class JoinError(Exception):
    """Joining failed in a way retrying may fix (server unreachable, server error)."""


class JoinRefused(JoinError):
    """Joining failed in a way only the user can fix (bad token, CA pin mismatch, bad name)."""


class _Stored(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    node_name: str
    token: str
    server: str
    ca_sha256: str


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    name: str
    token: str
    server: str
    ca_pem: str
    data_dir: Path

    @property
    def key_path(self) -> Path:
        return self.data_dir / "node.key"

    @property
    def cert_path(self) -> Path:
        return self.data_dir / "node.crt"

    def client_config(self, server: str | None = None) -> ClientConfig:
        return ClientConfig(server=(server or self.server).rstrip("/"), ca=self.ca_pem, token=self.token,
                            source=str(self.data_dir / IDENTITY_FILE))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def ca_sha256(ca_pem: str) -> str:
    """sha256 of the first certificate's DER bytes, hex (what a join token pins)."""
    try:
        der = ssl.PEM_cert_to_DER_cert(ca_pem.strip() + "\n")
    except ValueError as exc:
        raise JoinRefused(f"the server's /cacerts is not a PEM certificate ({exc})") from None
    return hashlib.sha256(der).hexdigest()


def load_identity(data_dir: Path) -> NodeIdentity | None:
    path = data_dir / IDENTITY_FILE
    try:
        stored = msgspec.json.decode(path.read_bytes(), type=_Stored)
        ca_pem = (data_dir / "ca.crt").read_text()
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as exc:
        raise JoinRefused(f"{path} is damaged ({exc}); move the data dir away to join as a new node") from None
    return NodeIdentity(stored.node_name, stored.token, stored.server, ca_pem, data_dir)


def _key_and_csr(name: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"node:{name}")]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def _explain(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body) if isinstance(body, dict) else str(body)
    except ValueError:
        return response.text[:300]


def _join(server: str, token: JoinToken, name: str, timeout: float) -> tuple[str, str, bytes, str]:
    """(ca pem, certificate pem, key pem, node token) from the server, after checking the CA pin."""
    try:
        with httpx.Client(base_url=server, verify=False, timeout=timeout, trust_env=False) as insecure:
            response = insecure.get("/cacerts")
    except httpx.HTTPError as exc:
        raise JoinError(f"cannot fetch {server}/cacerts: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise JoinError(f"{server}/cacerts answered HTTP {response.status_code}: {_explain(response)}")
    ca_pem = response.text
    served = ca_sha256(ca_pem)
    if served != token.ca_sha256:
        raise JoinRefused(
            f"the server at {server} presents a CA with sha256 {served}, but the join token pins "
            f"{token.ca_sha256}; this is not the server the token belongs to (or the token is stale). "
            "Copy the current token from the server's data dir (node-token).")
    key_pem, csr_pem = _key_and_csr(name)
    verified = ClientConfig(server=server, ca=ca_pem).ssl_context()
    try:
        with httpx.Client(base_url=server, verify=verified, timeout=timeout, trust_env=False) as client:
            response = client.post("/api/v1/join", json={"nodeName": name, "csr": csr_pem.decode()},
                                   headers={"Authorization": f"Bearer {token.secret}"})
    except httpx.HTTPError as exc:
        raise JoinError(f"cannot join via {server}/api/v1/join: {exc or type(exc).__name__}") from None
    if response.status_code == 401:
        raise JoinRefused(f"the server at {server} refused the join token's secret (HTTP 401); "
                          "copy the current token from the server's data dir (node-token)")
    if 400 <= response.status_code < 500:
        raise JoinRefused(f"the server refused to join node {name!r}: {_explain(response)}")
    if response.status_code != 200:
        raise JoinError(f"joining failed with HTTP {response.status_code}: {_explain(response)}")
    body = response.json()
    return str(body["ca"]), str(body["certificate"]), key_pem, str(body["token"])


def load_or_join(data_dir: Path, server: str, token_text: str, name: str | None = None,
                 timeout: float = 15.0) -> NodeIdentity:
    """This node's identity from ``data_dir``, joining the cluster first if the dir is new."""
    existing = load_identity(data_dir)
    if existing is not None:
        if name and name != existing.name:
            raise JoinRefused(f"{data_dir} belongs to node {existing.name!r}, not {name!r}; drop --name "
                              "or use another --data-dir")
        return existing
    from shoal.pki.ca import JoinToken  # loads cryptography: only when joining

    try:
        token = JoinToken.parse(token_text)
    except ValueError as exc:
        raise JoinRefused(f"--token: {exc}") from None
    node_name = name or socket.gethostname().lower()
    server = server.rstrip("/")
    ca_pem, cert_pem, key_pem, node_token = _join(server, token, node_name, timeout)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    _write_private(data_dir / "node.key", key_pem)
    _write_private(data_dir / "node.crt", cert_pem.encode())
    _write_private(data_dir / "ca.crt", ca_pem.encode())
    stored = _Stored(node_name=node_name, token=node_token, server=server, ca_sha256=ca_sha256(ca_pem))
    _write_private(data_dir / IDENTITY_FILE, msgspec.json.encode(stored))
    return NodeIdentity(node_name, node_token, server, ca_pem, data_dir)
