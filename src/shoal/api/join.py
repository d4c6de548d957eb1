"""Node joining, K3s-style: ``GET /cacerts`` (public) and ``POST /api/v1/join`` (join secret).

A node fetches the CA unverified, checks it against the hash pinned in its join token, then sends
a CSR with the secret half of the token as bearer. It gets back a certificate signed by the CA
(``CN=node:<name>``), the CA, and a node bearer token (``NodeCredentials.issue``). Failures are
Status objects. This module must not touch the store: joining creates no resource; the agent
registers its Node itself afterwards.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from shoal.api.errors import ApiError
from shoal.model import FieldError
from shoal.model.validation import check_name
from shoal.pki.ca import CertificateAuthority
from shoal.pki.nodecreds import NodeCredentials

__all__ = ["JoinRequest", "JoinResponse", "join_routes"]

_MAX_BODY = 64 << 10


class JoinRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    node_name: str
    csr: str


class JoinResponse(msgspec.Struct, frozen=True, kw_only=True):
    certificate: str
    ca: str
    token: str


def _bearer(request: Request[Any, Any, Any]) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _decode(body: bytes) -> JoinRequest:
    if len(body) > _MAX_BODY:
        raise ApiError(413, f"a join request is at most {_MAX_BODY} bytes")
    try:
        return msgspec.json.decode(body, type=JoinRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        found = re.search(r"at `\$\.(\w+)|field `(\w+)`", text)
        field = (found.group(1) or found.group(2)) if found else ""
        raise ApiError(422, f"join request is invalid: {exc}; send "
                       '{"nodeName": "<name>", "csr": "<PEM certificate request>"}',
                       causes=[FieldError(field, str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the join request is not JSON: {exc}") from None


def join_routes(ca: CertificateAuthority, join_secret: str, credentials: NodeCredentials) -> list[HTTPRouteHandler]:
    """The two join route handlers bound to this server's CA, join secret and node credentials."""
    ca_pem = ca.cert_pem.decode()
    secret = join_secret.encode()

    @get("/cacerts", media_type="text/plain", sync_to_thread=False)
    def cacerts() -> Response[str]:
        return Response(ca_pem, media_type="text/plain")

    @post("/api/v1/join", status_code=200)
    async def join(request: Request[Any, Any, Any]) -> Response[bytes]:
        if not hmac.compare_digest(_bearer(request).encode(), secret):
            raise ApiError(401, "Unauthorized")
        req = _decode(await request.body())
        name_errors = check_name("nodeName", req.node_name)
        if name_errors:
            raise ApiError(422, f"join request is invalid: {name_errors[0]}", causes=name_errors)
        try:
            cert = ca.sign_csr(req.csr.encode(), req.node_name)
        except ValueError as exc:
            raise ApiError(422, f"join request is invalid: csr: {exc}; send a PEM-encoded EC P-256 "
                           "certificate signing request", causes=[FieldError("csr", str(exc))]) from None
        token = credentials.issue(req.node_name)
        body = msgspec.json.encode(JoinResponse(certificate=cert.decode(), ca=ca_pem, token=token))
        return Response(body, media_type="application/json")

    return [cacerts, join]
