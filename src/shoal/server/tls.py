"""Mutual TLS for the server: the verified client certificate of a connection, in each request's
ASGI scope.

uvicorn asks every client for an optional certificate signed by the cluster CA (``CERT_OPTIONAL``,
the CA as ``ssl_ca_certs``: no certificate is fine, a bad one fails the handshake) but does not hand
it to the app. ``PeerCertProtocol`` (uvicorn's httptools protocol, passed as ``http=``) reads it once
per connection from the transport's ``ssl_object`` and puts it in the scope as the TLS extension:
``scope["extensions"]["tls"]`` with ``client_cert_chain`` (PEM) and ``client_cert_fields``
(``getpeercert()``), which ``api.auth.TokenAuth`` maps to ``node:NAME``. It decides nothing itself.
"""

from __future__ import annotations

import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shoal.api.auth import CLIENT_CERT_FIELDS, TLS_EXTENSION

__all__ = ["PeerCertProtocol"]


def _tls_extension(transport: Any) -> dict[str, object]:
    """The ASGI TLS extension for a connection: its verified client certificate, if it sent one."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return {}
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return {}
    return {"client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)], CLIENT_CERT_FIELDS: ssl_object.getpeercert()}


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol plus the client certificate in ``scope["extensions"]["tls"]``."""

    _tls: dict[str, object] | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is None:  # once per connection: the handshake is over before the first request
            self._tls = _tls_extension(self.transport)
        if self._tls:
            self.scope["extensions"] = {TLS_EXTENSION: self._tls}  # type: ignore[dict-item]
