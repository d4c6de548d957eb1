"""registries.yaml TLS settings against a real docker-registry serving https on loopback (as a mirror):
the CA file makes it trusted, an unknown CA is refused, insecure_skip_verify accepts it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from imagelab import busybox_layers

from shoal.image.assemble import create_image
from shoal.image.content import ContentStore
from shoal.image.errors import RegistryUnavailableError
from shoal.image.pull import RegistryAccess, pull_image
from shoal.image.reference import parse_reference
from shoal.image.registryconfig import parse
from shoal.pki.ca import CertificateAuthority


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """docker-registry with a certificate from a fresh CA; yields host:port and the CA file."""
    pki = tmp_path / "pki"
    pki.mkdir()
    cert, key = CertificateAuthority.load_or_create(pki).issue_server_cert(pki, ["127.0.0.1"])
    port = _port()
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\n"
    )
    log = tmp_path / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"https://127.0.0.1:{port}/v2/", verify=False, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"docker-registry (tls) did not start: {log.read_text()[-2000:]}")
        yield f"127.0.0.1:{port}", pki / "ca.crt"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_tls_mirror_needs_its_ca_or_skip_verify(tls_registry: tuple[str, Path], tmp_path: Path) -> None:
    host, ca_file = tls_registry
    src = ContentStore(tmp_path / "src")
    digest = create_image(src, "bb", busybox_layers()).digest
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{src.root}:bb",
                    f"docker://{host}/acme/bb:1"], check=True, timeout=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        origin = f"127.0.0.1:{s.getsockname()[1]}"  # unreachable: only the mirror can serve
    ref = parse_reference(f"{origin}/acme/bb:1")
    mirrors = {origin: {"endpoints": [f"https://{host}"]}}

    def pull(tls: dict[str, object], into: str) -> str:
        access = RegistryAccess(parse({"mirrors": mirrors, "configs": {host: {"tls": tls}}}))
        return asyncio.run(pull_image(ContentStore(tmp_path / into), ref, access=access)).digest

    with pytest.raises(RegistryUnavailableError, match=r"mirrors failed first: https://127.*certificate verify failed"):
        pull({}, "untrusted")
    assert pull({"ca_file": str(ca_file)}, "with-ca") == digest
    assert pull({"insecure_skip_verify": True}, "skip") == digest
