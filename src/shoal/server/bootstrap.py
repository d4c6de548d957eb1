"""First start of a server data dir: CA, server certificate, tokens and ``admin.yaml``.

Idempotent: a second start reuses what exists, so certificates and tokens stay valid.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml

from shoal.pki import CertificateAuthority, JoinToken, ca_hash, new_secret, write_private


@dataclass(frozen=True, slots=True)
class ServerFiles:
    data_dir: Path
    ca: CertificateAuthority
    cert_file: Path
    key_file: Path
    admin_token: str
    join_token: JoinToken
    admin_config: Path


def _secret_file(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = new_secret()
    write_private(path, f"{value}\n".encode())
    return value


def _local_addresses() -> list[str]:
    hosts = {"127.0.0.1", "localhost", "::1"}
    try:
        hostname = socket.gethostname()
        hosts.add(hostname)
        for info in socket.getaddrinfo(hostname, None):
            hosts.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(hosts)


def prepare(data_dir: Path, bind: str, port: int, extra_sans: list[str]) -> ServerFiles:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    pki_dir = data_dir / "pki"
    pki_dir.mkdir(exist_ok=True)
    ca = CertificateAuthority.load_or_create(pki_dir)
    hosts = sorted({*_local_addresses(), *extra_sans, *([bind] if bind not in ("0.0.0.0", "::") else [])})
    cert_file, key_file = ca.issue_server_cert(pki_dir, hosts)
    admin_token = _secret_file(data_dir / "admin-token")
    join_secret = _secret_file(data_dir / "node-secret")
    join_token = JoinToken(ca_hash(ca.cert_pem), join_secret)
    write_private(data_dir / "node-token", f"{join_token}\n".encode())
    host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    url_host = f"[{host}]" if ":" in host else host
    admin_config = data_dir / "admin.yaml"
    config = {"server": f"https://{url_host}:{port}", "ca": ca.cert_pem.decode(), "token": admin_token}
    text = yaml.safe_dump(config, default_flow_style=False).encode()
    if not admin_config.exists() or admin_config.read_bytes() != text:
        write_private(admin_config, text)
    return ServerFiles(data_dir, ca, cert_file, key_file, admin_token, join_token, admin_config)
