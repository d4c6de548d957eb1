"""Node joining, K3s-style: ``GET /cacerts`` (public), ``POST /api/v1/join`` (join secret) and
certificate renewal, ``POST /api/v1/nodes/NAME/certificate`` (the node's own credentials).

A node fetches the CA unverified, checks it against the hash pinned in its join token, then sends
a CSR with the secret half of the token as bearer. It gets back a certificate signed by the CA
(``CN=node:<name>, OU=join-<id>``, valid for the server's node certificate lifetime), the CA, the
validity window and a node bearer token (``NodeCredentials.issue``: a new join id and token, which
retires the previous join's). Renewal signs a new CSR under the same join id. Failures are Status
objects. This module must not touch the store: joining creates no resource; the agent registers
its Node itself afterwards.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from shoal.api.errors import ApiError
from shoal.model import FieldError
from shoal.model.validation import check_name
from shoal.pki.ca import LEAF_DAYS, CertificateAuthority, NodeCertificate
from shoal.pki.nodecreds import NodeCredentials, new_join_id

__all__ = ["CertificateRequest", "CertificateResponse", "JoinRequest", "JoinResponse", "join_routes"]

_MAX_BODY = 64 << 10
_Body = TypeVar("_Body")


class JoinRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    node_name: str
    csr: str


class JoinResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    certificate: str
    ca: str
    token: str
    not_before: str = ""  # RFC 3339, the certificate's validity window
    not_after: str = ""


class CertificateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    csr: str


class CertificateResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    certificate: str
    ca: str
    not_before: str
    not_after: str


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bearer(request: Request[Any, Any, Any]) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _decode(body: bytes, kind: type[_Body], what: str, shape: str) -> _Body:
    if len(body) > _MAX_BODY:
        raise ApiError(413, f"a {what} is at most {_MAX_BODY} bytes")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        found = re.search(r"at `\$\.(\w+)|field `(\w+)`", text)
        field = (found.group(1) or found.group(2)) if found else ""
        raise ApiError(422, f"{what} is invalid: {exc}; send {shape}", causes=[FieldError(field, str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the {what} is not JSON: {exc}") from None


def _sign(ca: CertificateAuthority, csr: str, node: str, join_id: str, lifetime: dt.timedelta,
          what: str) -> NodeCertificate:
    try:
        return ca.sign_node_csr(csr.encode(), node, join_id, lifetime)
    except ValueError as exc:
        raise ApiError(422, f"{what} is invalid: csr: {exc}; send a PEM-encoded EC P-256 "
                       "certificate signing request", causes=[FieldError("csr", str(exc))]) from None


def join_routes(ca: CertificateAuthority, join_secret: str, credentials: NodeCredentials,
                node_cert_lifetime: dt.timedelta = dt.timedelta(days=LEAF_DAYS)) -> list[HTTPRouteHandler]:
    """The join and renewal route handlers bound to this server's CA, join secret and node credentials."""
    ca_pem = ca.cert_pem.decode()
    secret = join_secret.encode()
    join_shape = '{"nodeName": "<name>", "csr": "<PEM certificate request>"}'

    @get("/cacerts", media_type="text/plain", sync_to_thread=False)
    def cacerts() -> Response[str]:
        return Response(ca_pem, media_type="text/plain")

    @post("/api/v1/join", status_code=200)
    async def join(request: Request[Any, Any, Any]) -> Response[bytes]:
        if not hmac.compare_digest(_bearer(request).encode(), secret):
            raise ApiError(401, "Unauthorized")
        req = _decode(await request.body(), JoinRequest, "join request", join_shape)
        name_errors = check_name("nodeName", req.node_name)
        if name_errors:
            raise ApiError(422, f"join request is invalid: {name_errors[0]}", causes=name_errors)
        join_id = new_join_id()
        cert = _sign(ca, req.csr, req.node_name, join_id, node_cert_lifetime, "join request")
        token = credentials.issue(req.node_name, join_id)
        body = msgspec.json.encode(JoinResponse(certificate=cert.pem.decode(), ca=ca_pem, token=token,
                                                not_before=_rfc3339(cert.not_before),
                                                not_after=_rfc3339(cert.not_after)))
        return Response(body, media_type="application/json")

    @post("/api/v1/{plural:str}/{name:str}/certificate", status_code=200)
    async def renew(request: Request[Any, Any, Any], plural: str, name: str) -> Response[bytes]:
        if plural != "nodes":
            raise ApiError(404, f"{plural} have no certificate; POST /api/v1/nodes/NAME/certificate")
        subject = str((request.scope.get("state") or {}).get("subject") or "")
        if subject != f"node:{name}":
            raise ApiError(403, f"only node {name}'s own certificate or token may renew its certificate; "
                           "an admin re-joins a node instead", reason="Forbidden", kind="Node", name=name)
        join_id = credentials.join_id(name)
        if join_id is None:
            raise ApiError(401, "Unauthorized")
        req = _decode(await request.body(), CertificateRequest, "certificate request",
                      '{"csr": "<PEM certificate request>"}')
        cert = _sign(ca, req.csr, name, join_id, node_cert_lifetime, "certificate request")
        body = msgspec.json.encode(CertificateResponse(certificate=cert.pem.decode(), ca=ca_pem,
                                                       not_before=_rfc3339(cert.not_before),
                                                       not_after=_rfc3339(cert.not_after)))
        return Response(body, media_type="application/json")

    return [cacerts, join, renew]
