"""The cluster's certificate authority: a self-signed CA, the server certificate and node
certificates signed from CSRs, plus join tokens that pin the CA.

A node certificate says ``CN=node:<name>, O=shoal:nodes, OU=join-<id>`` with a DNS SAN of the
name; the join id ties it to one join of that node (``NodeCredentials``), so a re-join or a revoke
retires every certificate of the earlier join while renewals keep the id. Files live in the
server's data dir; nothing here talks to the network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.pki.files import write_private

CA_DAYS = 3650
LEAF_DAYS = 365
NODE_ORGANIZATION = "shoal:nodes"
JOIN_PREFIX = "join-"
_MAX_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class NodeCertificate:
    """A signed node certificate (PEM) and its validity window."""

    pem: bytes
    not_before: dt.datetime
    not_after: dt.datetime


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ca_hash(ca_pem: bytes) -> str:
    """sha256 of the CA certificate's DER bytes, hex: what a join token pins."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True, slots=True)
class JoinToken:
    """``shoal-<ca sha256>::<secret>``: the CA pin lets a node reject an impostor server."""

    ca_sha256: str
    secret: str

    def __str__(self) -> str:
        return f"shoal-{self.ca_sha256}::{self.secret}"

    @classmethod
    def parse(cls, text: str) -> JoinToken:
        text = text.strip()
        if not text.startswith("shoal-") or "::" not in text:
            raise ValueError('a join token looks like "shoal-<64 hex>::<secret>"; copy it from the '
                             "server's data dir (node-token)")
        pin, secret = text[len("shoal-"):].split("::", 1)
        if len(pin) != 64 or not secret:
            raise ValueError("the join token is truncated; copy the whole line from node-token")
        return cls(pin, secret)


class CertificateAuthority:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, directory: Path, name: str = "shoal-ca") -> CertificateAuthority:
        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(cert, key)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        write_private(key_path, _key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert, key)

    def _sign(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, *, server: bool,
              sans: list[x509.GeneralName], lifetime: dt.timedelta = dt.timedelta(days=LEAF_DAYS)) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        skew = min(_MAX_SKEW, lifetime / 10)  # clock skew allowance that stays small for short lifetimes
        usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server \
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - skew)
                   .not_valid_after(now + lifetime)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server_cert(self, directory: Path, hosts: list[str]) -> tuple[Path, Path]:
        """Write server.crt/server.key covering ``hosts`` (IPs and DNS names); reuse if current."""
        cert_path, key_path = directory / "server.crt", directory / "server.key"
        wanted = set(hosts)
        if cert_path.exists() and key_path.exists():
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
            san = existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
                san.get_values_for_type(x509.DNSName))
            if wanted <= have and existing.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
                return cert_path, key_path
        sans: list[x509.GeneralName] = []
        for host in sorted(wanted):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal-server")])
        cert = self._sign(subject, key.public_key(), server=True, sans=sans)
        write_private(key_path, _key_pem(key))
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM) + self.cert_pem)
        return cert_path, key_path

    def sign_csr(self, csr_pem: bytes, node_name: str, join_id: str = "",
                 lifetime: dt.timedelta = dt.timedelta(days=LEAF_DAYS)) -> bytes:
        """Sign a node's CSR as ``CN=node:<name>``; the CSR's own subject is not trusted."""
        return self.sign_node_csr(csr_pem, node_name, join_id, lifetime).pem

    def sign_node_csr(self, csr_pem: bytes, node_name: str, join_id: str,
                      lifetime: dt.timedelta) -> NodeCertificate:
        """Sign a node's CSR for ``lifetime`` as ``CN=node:<name>, OU=join-<join_id>``."""
        if lifetime <= dt.timedelta(0):
            raise ValueError("a node certificate's lifetime must be positive")
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the certificate request's signature is invalid")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError("node keys must be EC P-256")
        names = [x509.NameAttribute(NameOID.COMMON_NAME, f"node:{node_name}"),
                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODE_ORGANIZATION)]
        if join_id:
            names.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, JOIN_PREFIX + join_id))
        cert = self._sign(x509.Name(names), public_key, server=False, sans=[x509.DNSName(node_name)],
                          lifetime=lifetime)
        return NodeCertificate(cert.public_bytes(serialization.Encoding.PEM), cert.not_valid_before_utc,
                               cert.not_valid_after_utc)


def new_secret() -> str:
    return secrets.token_urlsafe(32)
