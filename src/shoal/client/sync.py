"""The blocking shoal API client (httpx, HTTP/1.1 keep-alive). Objects are plain dicts.

Each method is one ``calls`` entry run over one connection pool; watches stream NDJSON lines.
It must not print or exit; errors are ``ApiError`` and ``ServerUnreachable``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from shoal.client import calls
from shoal.client.calls import KindRef, Obj
from shoal.client.config import ClientConfig
from shoal.client.transport import DEFAULT_TIMEOUT, client_options, unreachable, watch_timeout

T = TypeVar("T")


class Client:
    """``Client(load_config())``; use as a context manager or call ``close()``."""

    def __init__(self, config: ClientConfig, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.Client(transport=transport, **client_options(config, timeout))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, call: calls.Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, params=call.params,
                                          content=call.content(), headers=call.headers())
        except httpx.TransportError as exc:
            raise unreachable(self.config, exc) from None
        return call.parse(response)

    def get(self, kind: KindRef, namespace: str | None, name: str) -> Obj:
        return self.run(calls.get(kind, namespace, name))

    def list(self, kind: KindRef, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[Obj], str]:
        """``(items, resourceVersion)``; ``namespace=None`` lists across all namespaces."""
        return self.run(calls.list_(kind, namespace, label_selector, field_selector))

    def create(self, obj: Obj) -> Obj:
        return self.run(calls.create(obj))

    def replace(self, obj: Obj) -> Obj:
        return self.run(calls.replace(obj))

    def merge_patch(self, kind: KindRef, namespace: str | None, name: str, patch: Obj) -> Obj:
        return self.run(calls.merge_patch(kind, namespace, name, patch))

    def apply(self, obj: Obj, field_manager: str = "shoal-cli") -> tuple[Obj, str]:
        """Server-side apply; returns the stored object and created|configured|unchanged."""
        return self.run(calls.apply(obj, field_manager))

    def delete(self, kind: KindRef, namespace: str | None, name: str) -> Obj:
        return self.run(calls.delete(kind, namespace, name))

    def get_status(self, kind: KindRef, namespace: str | None, name: str) -> Obj:
        return self.run(calls.get_status(kind, namespace, name))

    def put_status(self, obj: Obj) -> Obj:
        return self.run(calls.put_status(obj))

    def get_scale(self, namespace: str | None, name: str) -> Obj:
        return self.run(calls.get_scale(namespace, name))

    def scale(self, namespace: str | None, name: str, replicas: int) -> Obj:
        return self.run(calls.scale(namespace, name, replicas))

    def heartbeat(self, node: str) -> None:
        self.run(calls.heartbeat(node))

    def heartbeats(self, nodes: Sequence[str]) -> None:
        self.run(calls.heartbeats(nodes))

    def version(self) -> Obj:
        return self.run(calls.version())

    def watch(self, kind: KindRef, namespace: str | None = None, resource_version: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout: float | None = None) -> Iterator[tuple[str, Obj]]:
        """Yield ``(type, object)`` per NDJSON line (ADDED, MODIFIED, DELETED, BOOKMARK).

        With ``timeout`` the watch ends quietly after about that many seconds. An ERROR line
        (e.g. 410 Expired: re-list) raises ``ApiError``.
        """
        info = calls.kind_info(kind)
        deadline = None if timeout is None else time.monotonic() + timeout
        params = calls.watch_params(resource_version, label_selector, field_selector)
        try:
            with self._http.stream("GET", calls.watch_path(info, namespace), params=params,
                                   timeout=watch_timeout(timeout)) as response:
                if response.status_code >= 400:
                    response.read()
                    calls.decode_body(response)
                for line in response.iter_lines():
                    event = calls.watch_event(line)
                    if event is not None:
                        yield event
                    if deadline is not None and time.monotonic() >= deadline:
                        return
        except httpx.ReadTimeout as exc:
            if deadline is None:
                raise unreachable(self.config, exc) from None
        except httpx.TransportError as exc:
            raise unreachable(self.config, exc) from None
