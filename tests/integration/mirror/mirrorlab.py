"""Helpers for the registry-mirror tests: a counting HTTP proxy in front of a real docker-registry,
node tokens obtained through ``POST /api/v1/join``, and a fingerprint of an unpacked tree."""

from __future__ import annotations

import collections
import hashlib
import http.client
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class CountingProxy:
    """``127.0.0.1:PORT`` forwarding GET/HEAD to ``upstream``, counting every request by (method, path).

    Blob GETs are held for ``blob_delay`` seconds first, so concurrent requests truly overlap.
    """

    def __init__(self, upstream: str, blob_delay: float = 0.5) -> None:
        self.upstream, self.blob_delay = upstream, blob_delay
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                proxy.forward(self)

            def do_HEAD(self) -> None:
                proxy.forward(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path.split("?", 1)[0]
        with self._lock:
            self.counts[(method, path)] += 1
        if method == "GET" and "/blobs/" in path:
            time.sleep(self.blob_delay)
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(method, handler.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except OSError:
            handler.send_error(502)
            return
        finally:
            conn.close()
        handler.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                handler.send_header(key, value)
        length = resp.getheader("content-length", "0") if method == "HEAD" else str(len(body))
        handler.send_header("Content-Length", length)
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(body)

    def blob_gets(self) -> dict[str, int]:
        with self._lock:
            return {p.rsplit("/", 1)[1]: n for (m, p), n in self.counts.items() if m == "GET" and "/blobs/" in p}

    def manifest_gets(self) -> int:
        with self._lock:
            return sum(n for (m, p), n in self.counts.items() if m == "GET" and "/manifests/" in p)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def tree_fingerprint(root: Path) -> list[tuple[str, int, str]]:
    """(path, mode, content hash or link target) for everything under ``root``, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = ""
            out.append((str(path.relative_to(root)), st.st_mode, what))
    return sorted(out)
