"""Cluster PKI: the CA, server and node certificates, join tokens and node credentials.

``write_private`` (``pki.files``) loads eagerly and imports nothing heavy; the CA names load
``cryptography`` on first use, so a process that only writes files (the agent) never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.pki.files import write_private

if TYPE_CHECKING:
    from shoal.pki.ca import CertificateAuthority, JoinToken, ca_hash, new_secret

__all__ = ["CertificateAuthority", "JoinToken", "ca_hash", "new_secret", "write_private"]

_LAZY = frozenset({"CertificateAuthority", "JoinToken", "ca_hash", "new_secret"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from shoal.pki import ca

        return getattr(ca, name)
    raise AttributeError(f"module 'shoal.pki' has no attribute {name!r}")
