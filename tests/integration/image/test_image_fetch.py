"""The threaded blob download path (fetch.py via RegistryClient.fetch_blob) against a loopback HTTP server.

A tiny scripted server on 127.0.0.1 plays the registry (and a second origin for redirects), so
the cases a real registry rarely shows are exercised: redirects across origins, a connection cut
mid-body then resumed with Range, error statuses, a 401 on the blob that the httpx path answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shoal.image.auth import Credentials
from shoal.image.content import ContentStore
from shoal.image.errors import DigestMismatchError, ImageNotFoundError, RegistryUnavailableError
from shoal.image.oci import Descriptor
from shoal.image.registry import RegistryClient
from shoal.pki.ca import CertificateAuthority

BLOB = bytes(range(256)) * 8192  # 2 MiB
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
DESC = Descriptor(media_type="application/octet-stream", digest=DIGEST, size=len(BLOB))
BASIC = "Basic " + base64.b64encode(b"edge:pw").decode()


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class Server:
    host: str
    seen: list[Seen] = field(default_factory=list)
    handle: Callable[[BaseHTTPRequestHandler], None] | None = None


def _start(tls: ssl.SSLContext | None = None) -> tuple[Server, ThreadingHTTPServer, threading.Thread]:
    """A loopback server answering GETs with its state's ``handle`` (over TLS when ``tls``)."""
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        srv = state

        def do_GET(self) -> None:
            self.srv.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
            assert self.srv.handle is not None
            self.srv.handle(self)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.host = f"127.0.0.1:{httpd.server_address[1]}"
    return state, httpd, thread


def _stop(httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """Two plain-HTTP loopback servers (two origins)."""
    first, second = _start(), _start()
    try:
        yield first[0], second[0]
    finally:
        _stop(*first[1:])
        _stop(*second[1:])


@pytest.fixture
def tls_storage(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """An https loopback server with a certificate from a fresh CA; yields it and the CA file."""
    ca = CertificateAuthority.load_or_create(tmp_path)
    cert, key = ca.issue_server_cert(tmp_path, ["127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server, httpd, thread = _start(ctx)
    try:
        yield server, tmp_path / "ca.crt"
    finally:
        _stop(httpd, thread)


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _serve_blob(h: BaseHTTPRequestHandler) -> None:
    rng = h.headers.get("Range")
    if rng:
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        _send(h, 206, BLOB[start:], {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"})
    else:
        _send(h, 200, BLOB)


def _fetch(store: ContentStore, host: str, *more: ContentStore, **kw: object) -> list[tuple[int, int]]:
    """Fetch DESC into each store in turn, with one client; returns the progress reports."""
    progress: list[tuple[int, int]] = []

    async def run() -> None:
        async with RegistryClient(host, **kw) as client:  # type: ignore[arg-type]
            for s in (store, *more):
                await client.fetch_blob("acme/app", DESC, s, lambda d, done, total: progress.append((done, total)))

    asyncio.run(run())
    return progress


def test_blob_is_downloaded_verified_and_progress_reported(tmp_path: Path, servers: tuple[Server, Server]) -> None:
    reg, _ = servers
    reg.handle = _serve_blob
    store = ContentStore(tmp_path)
    progress = _fetch(store, reg.host)
    assert store.read(DIGEST) == BLOB
    assert progress[-1] == (len(BLOB), len(BLOB))
    assert [s.path for s in reg.seen] == [f"/v2/acme/app/blobs/{DIGEST}"]
    assert not list((tmp_path / "ingest").iterdir())


def test_redirect_to_other_origin_drops_authorization(tmp_path: Path, servers: tuple[Server, Server]) -> None:
    reg, storage = servers

    def registry(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") != BASIC:
            _send(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="r"'})
        else:
            _send(h, 307, b"", {"Location": f"http://{storage.host}/data/blob?sig=abc"})

    reg.handle, storage.handle = registry, _serve_blob
    first, second = ContentStore(tmp_path / "a"), ContentStore(tmp_path / "b")
    # The first fetch meets the 401 (the httpx path answers the challenge); the second goes
    # straight through the threaded path with the learnt credentials and follows the redirect.
    _fetch(first, reg.host, second, credentials=Credentials("edge", "pw"))
    assert first.read(DIGEST) == BLOB == second.read(DIGEST)
    assert [s.path for s in storage.seen] == ["/data/blob?sig=abc"] * 2
    assert all("authorization" not in s.headers for s in storage.seen)
    direct = [s for s in reg.seen if s.headers.get("user-agent") == "shoal"]
    assert [s.headers.get("authorization") for s in direct] == [None, BASIC]
    assert storage.seen[-1].headers.get("user-agent") == "shoal"


def test_cut_connection_keeps_partial_and_resumes_with_range(tmp_path: Path, servers: tuple[Server, Server]) -> None:
    reg, _ = servers
    calls = {"n": 0}

    def flaky(h: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # announce everything, send a third, hang up
            h.send_response(200)
            h.send_header("Content-Length", str(len(BLOB)))
            h.end_headers()
            h.wfile.write(BLOB[: len(BLOB) // 3])
            h.wfile.flush()
            h.close_connection = True
            return
        _serve_blob(h)

    reg.handle = flaky
    store = ContentStore(tmp_path)
    _fetch(store, reg.host)  # fetch_blob retries a RegistryUnavailableError itself
    assert store.read(DIGEST) == BLOB
    assert reg.seen[1].headers.get("range") == f"bytes={len(BLOB) // 3}-"


def test_cut_connection_every_time_is_a_clear_error(tmp_path: Path, servers: tuple[Server, Server]) -> None:
    reg, _ = servers

    def cut(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BLOB)))
        h.end_headers()
        h.wfile.write(b"\0" * 100)
        h.close_connection = True

    reg.handle = cut
    store = ContentStore(tmp_path)
    with pytest.raises(RegistryUnavailableError, match="download interrupted at byte"):
        _fetch(store, reg.host)
    assert not store.has(DIGEST)


def test_wrong_bytes_are_refused_and_not_stored(tmp_path: Path, servers: tuple[Server, Server]) -> None:
    reg, _ = servers
    reg.handle = lambda h: _send(h, 200, b"\1" * len(BLOB))
    store = ContentStore(tmp_path)
    with pytest.raises(DigestMismatchError, match=DIGEST):
        _fetch(store, reg.host)
    assert not store.has(DIGEST)
    assert not list((tmp_path / "ingest").iterdir())


def test_missing_blob_names_it(tmp_path: Path, servers: tuple[Server, Server]) -> None:
    reg, _ = servers
    reg.handle = lambda h: _send(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
    with pytest.raises(ImageNotFoundError, match=rf"blob {DIGEST} of acme/app not found.*BLOB_UNKNOWN"):
        _fetch(ContentStore(tmp_path), reg.host)


@pytest.mark.parametrize("auth", [False, True], ids=["threaded-path", "httpx-path"])
def test_redirect_to_https_is_verified(
    tmp_path: Path,
    servers: tuple[Server, Server],
    tls_storage: tuple[Server, Path],
    monkeypatch: pytest.MonkeyPatch,
    auth: bool,
) -> None:
    """A plain loopback registry may redirect to https storage: that certificate is still checked.

    With ``auth`` the blob GET meets a 401 first, so the httpx client (and its lazily built TLS
    transport) follows the redirect; without, the threaded fetch path does.
    """
    reg, _ = servers
    storage, ca_file = tls_storage

    def registry(h: BaseHTTPRequestHandler) -> None:
        if auth and h.headers.get("Authorization") != BASIC:
            _send(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="r"'})
        else:
            _send(h, 307, b"", {"Location": f"https://{storage.host}/data/blob"})

    reg.handle, storage.handle = registry, _serve_blob
    creds = {"credentials": Credentials("edge", "pw")} if auth else {}
    with pytest.raises(RegistryUnavailableError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        _fetch(ContentStore(tmp_path / "untrusted"), reg.host, **creds)
    assert not ContentStore(tmp_path / "untrusted").has(DIGEST)

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # trust the CA: the same redirect now works
    trusted = ContentStore(tmp_path / "trusted")
    _fetch(trusted, reg.host, **creds)
    assert trusted.read(DIGEST) == BLOB
