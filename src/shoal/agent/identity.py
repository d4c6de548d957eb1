"""The node's identity: joining the cluster once, persisting the result in the data dir, and
renewing the node certificate before it expires.

``load_or_join`` parses the join token, fetches ``/cacerts`` without verification, checks the
CA's sha256 DER hash against the token's pin, makes an EC P-256 key and CSR, calls
``POST /api/v1/join`` and writes ``node.pem`` (key + certificate), ``node.crt``, ``ca.crt`` and
``identity.json`` (name, node token, certificate validity) to the data dir (0600). Restarted on the
same dir it is the same node and does not join again. The agent talks to the server with mutual
TLS (its certificate; the node token is the fallback when the certificate is expired). ``renew_loop``
renews the certificate when less than a third of its lifetime is left: a new key and CSR (made in
a child process, so ``cryptography`` never loads into the agent), ``POST
/api/v1/nodes/NAME/certificate``, atomic file replacement, then ``ClientCertificate.reload`` so new
connections present it. It must not register the Node or talk to the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec

from shoal.client.config import ClientCertificate, ClientConfig
from shoal.client.errors import ConfigError
from shoal.pki.files import write_private

if TYPE_CHECKING:
    from shoal.pki.ca import JoinToken

__all__ = ["IDENTITY_FILE", "JoinError", "JoinRefused", "NodeIdentity", "load_identity", "load_or_join",
           "renew_certificate", "renew_delay", "renew_loop"]

IDENTITY_FILE = "identity.json"
PEM_FILE = "node.pem"  # key + certificate: one file, so a renewal replaces both atomically
log = logging.getLogger("shoal.agent.identity")
_RENEW_RETRY_MAX = 300.0


class JoinError(Exception):
    """Joining failed in a way retrying may fix (server unreachable, server error)."""


class JoinRefused(JoinError):
    """Joining failed in a way only the user can fix (bad token, CA pin mismatch, bad name)."""


class _Stored(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    node_name: str
    token: str = ""  # the fallback credential; a node with a valid certificate does not need it
    server: str
    ca_sha256: str
    cert_not_before: dt.datetime | None = None
    cert_not_after: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    name: str
    token: str
    server: str
    ca_pem: str
    data_dir: Path
    not_before: dt.datetime | None = None  # the certificate's validity (None: unknown, renew soon)
    not_after: dt.datetime | None = None
    certificate: ClientCertificate | None = None  # node.pem, shared by every client built from this identity

    @property
    def cert_path(self) -> Path:
        return self.data_dir / "node.crt"

    @property
    def pem_path(self) -> Path:
        return self.data_dir / PEM_FILE

    def cert_usable(self, now: dt.datetime | None = None) -> bool:
        """True when the certificate is known and valid at ``now``: the client presents it."""
        now = now or dt.datetime.now(dt.UTC)
        return (self.certificate is not None and self.not_before is not None and self.not_after is not None
                and self.not_before <= now < self.not_after)

    def client_config(self, server: str | None = None, now: dt.datetime | None = None) -> ClientConfig:
        """The node's client: mutual TLS with its certificate, or its token while the certificate is unusable."""
        return ClientConfig(server=(server or self.server).rstrip("/"), ca=self.ca_pem, token=self.token,
                            source=str(self.data_dir / IDENTITY_FILE),
                            client_cert=self.certificate if self.cert_usable(now) else None)

    def _stored(self) -> _Stored:
        return _Stored(node_name=self.name, token=self.token, server=self.server, ca_sha256=ca_sha256(self.ca_pem),
                       cert_not_before=self.not_before, cert_not_after=self.not_after)


def _certificate(data_dir: Path) -> ClientCertificate | None:
    """node.pem; an identity written before node.pem (node.key + node.crt) is migrated to it once."""
    pem, key, crt = data_dir / PEM_FILE, data_dir / "node.key", data_dir / "node.crt"
    if not pem.exists() and key.exists() and crt.exists():
        write_private(pem, key.read_bytes() + crt.read_bytes())
        key.unlink()
    return ClientCertificate(pem) if pem.exists() else None


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
    return NodeIdentity(stored.node_name, stored.token, stored.server, ca_pem, data_dir, stored.cert_not_before,
                        stored.cert_not_after, _certificate(data_dir))


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


@dataclass(frozen=True, slots=True)
class _Issued:
    ca_pem: str
    cert_pem: str
    token: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None


def _issued(body: object, token: str = "") -> _Issued:
    if not isinstance(body, dict) or "certificate" not in body or "ca" not in body:
        raise JoinError(f"the server's answer has no certificate: {str(body)[:200]}")

    def when(key: str) -> dt.datetime | None:
        with contextlib.suppress(TypeError, ValueError):
            return dt.datetime.fromisoformat(str(body[key]).replace("Z", "+00:00"))
        return None

    return _Issued(str(body["ca"]), str(body["certificate"]), str(body.get("token") or token),
                   when("notBefore"), when("notAfter"))


def _join(server: str, token: JoinToken, name: str, timeout: float) -> tuple[_Issued, bytes]:
    """What the server issued and the key it was issued for, after checking the CA pin."""
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
    return _issued(response.json()), key_pem


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
    issued, key_pem = _join(server, token, node_name, timeout)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    identity = NodeIdentity(node_name, issued.token, server, issued.ca_pem, data_dir, issued.not_before,
                            issued.not_after, ClientCertificate(data_dir / PEM_FILE))
    write_private(data_dir / "ca.crt", issued.ca_pem.encode())
    return _store(identity, key_pem, issued.cert_pem)


def _store(identity: NodeIdentity, key_pem: bytes, cert_pem: str) -> NodeIdentity:
    """Write key + certificate (node.pem, atomically), node.crt, then identity.json (the validity)."""
    write_private(identity.pem_path, key_pem + cert_pem.encode())
    write_private(identity.cert_path, cert_pem.encode())
    write_private(identity.data_dir / IDENTITY_FILE, msgspec.json.encode(identity._stored()))
    return identity


# ----- certificate renewal ---------------------------------------------------------------------

_CSR_CHILD = ("import sys\nfrom shoal.agent.identity import _key_and_csr\n"
              "key, csr = _key_and_csr(sys.argv[1])\nsys.stdout.buffer.write(key + b'\\0' + csr)\n")


async def _key_and_csr_in_child(name: str, timeout: float) -> tuple[bytes, bytes]:
    """A new key and CSR made by a short-lived ``python``: cryptography never loads into the agent."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _CSR_CHILD, name,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise JoinError(f"making a key and certificate request took longer than {timeout:g}s") from None
    if proc.returncode != 0 or b"\0" not in out:
        raise JoinError(f"making a key and certificate request failed: {err.decode(errors='replace')[-300:]}")
    key, _, csr = out.partition(b"\0")
    return key, csr


def renew_delay(identity: NodeIdentity, now: dt.datetime) -> float:
    """Seconds until renewal is due: when a third of the certificate's lifetime is left (0 if unknown)."""
    if identity.not_before is None or identity.not_after is None or identity.certificate is None:
        return 0.0
    due = identity.not_after - (identity.not_after - identity.not_before) / 3
    return max(0.0, (due - now).total_seconds())


async def renew_certificate(identity: NodeIdentity, timeout: float = 15.0) -> NodeIdentity:
    """A new key and certificate for ``identity`` (authenticated with its current certificate, or its token
    when that is expired), written to the data dir; the returned identity has the new validity."""
    key_pem, csr_pem = await _key_and_csr_in_child(identity.name, timeout)
    cert_ok = identity.cert_usable()
    if not cert_ok and not identity.token:
        raise JoinRefused(f"node {identity.name}'s certificate has expired and it has no node token; move "
                          f"{identity.data_dir} away and join again with the server's join token")
    # A one-shot certificate object: the shared one's contexts load the new files only after they are written.
    config = dataclasses.replace(identity.client_config(), client_cert=ClientCertificate(identity.pem_path)
                                 if cert_ok else None)
    headers = {} if cert_ok else {"Authorization": f"Bearer {identity.token}"}
    url = f"/api/v1/nodes/{identity.name}/certificate"
    try:
        async with httpx.AsyncClient(base_url=config.server, verify=config.ssl_context(), timeout=timeout,
                                     trust_env=False, headers=headers) as client:
            response = await client.post(url, json={"csr": csr_pem.decode()})
    except httpx.HTTPError as exc:
        raise JoinError(f"cannot renew the node certificate via {config.server}{url}: "
                        f"{exc or type(exc).__name__}") from None
    if response.status_code in (401, 403):
        raise JoinRefused(f"the server refused to renew node {identity.name}'s certificate "
                          f"(HTTP {response.status_code}: {_explain(response)}); the node was revoked or joined "
                          f"again elsewhere: move {identity.data_dir} away and join again")
    if response.status_code != 200:
        raise JoinError(f"renewing the node certificate failed with HTTP {response.status_code}: "
                        f"{_explain(response)}")
    try:
        issued = _issued(response.json(), identity.token)
    except ValueError:
        raise JoinError(f"the server's renewal answer is not JSON: {response.text[:200]}") from None
    if issued.not_after is None or issued.not_before is None:
        raise JoinError("the server's renewal answer has no notBefore/notAfter; upgrade the server")
    renewed = dataclasses.replace(identity, not_before=issued.not_before, not_after=issued.not_after,
                                  certificate=identity.certificate or ClientCertificate(identity.pem_path))
    return _store(renewed, key_pem, issued.cert_pem)


def _backoff(failures: int) -> float:
    return min(_RENEW_RETRY_MAX, 2.0 ** min(failures, 16))


async def renew_loop(identity: NodeIdentity, stop: asyncio.Event, timeout: float = 15.0) -> None:
    """Renew the node certificate whenever a third of its lifetime is left, until ``stop``; failures are
    logged and retried with backoff (the agent keeps running on its current certificate or token)."""
    current, failures = identity, 0
    while not stop.is_set():
        delay = renew_delay(current, dt.datetime.now(dt.UTC)) if failures == 0 else _backoff(failures)
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(delay, 3600.0))
            if stop.is_set():
                return
            if delay > 3600.0:  # re-checked at least hourly (the clock may have jumped)
                continue
        try:
            current = await renew_certificate(current, timeout)
            reloaded = current.certificate.reload() if current.certificate is not None else 0
        except (JoinError, ConfigError, OSError) as exc:
            failures += 1
            log.warning("node %s: %s; retrying in %gs", current.name, exc, _backoff(failures))
            continue
        failures = 0
        log.info("node %s: renewed its certificate, valid until %s (%d client(s) reloaded)", current.name,
                 current.not_after.isoformat() if current.not_after else "?", reloaded)
