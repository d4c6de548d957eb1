"""Cluster PKI: the CA, server and node certificates, and join tokens."""

from shoal.pki.ca import CertificateAuthority, JoinToken, ca_hash, new_secret, write_private

__all__ = ["CertificateAuthority", "JoinToken", "ca_hash", "new_secret", "write_private"]
