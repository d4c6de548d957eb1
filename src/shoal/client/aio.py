"""The asyncio shoal API client, the same methods as ``Client`` awaited (used by agents and sims).

It shares every path and parser with the sync client through ``calls``; it must not print or exit.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from shoal.client import calls
from shoal.client.calls import KindRef, Obj
from shoal.client.config import ClientConfig
from shoal.client.transport import DEFAULT_TIMEOUT, client_options, unreachable, watch_timeout

T = TypeVar("T")


class AsyncClient:
    """``async with AsyncClient(config) as client: ...``"""

    def __init__(self, config: ClientConfig, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.AsyncClient(transport=transport, **client_options(config, timeout))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, call: calls.Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, params=call.params,
                                                content=call.content(), headers=call.headers())
        except httpx.TransportError as exc:
            raise unreachable(self.config, exc) from None
        return call.parse(response)

    async def get(self, kind: KindRef, namespace: str | None, name: str) -> Obj:
        return await self.run(calls.get(kind, namespace, name))

    async def list(self, kind: KindRef, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None) -> tuple[list[Obj], str]:
        return await self.run(calls.list_(kind, namespace, label_selector, field_selector))

    async def create(self, obj: Obj) -> Obj:
        return await self.run(calls.create(obj))

    async def replace(self, obj: Obj) -> Obj:
        return await self.run(calls.replace(obj))

    async def merge_patch(self, kind: KindRef, namespace: str | None, name: str, patch: Obj) -> Obj:
        return await self.run(calls.merge_patch(kind, namespace, name, patch))

    async def apply(self, obj: Obj, field_manager: str = "shoal-cli") -> tuple[Obj, str]:
        return await self.run(calls.apply(obj, field_manager))

    async def delete(self, kind: KindRef, namespace: str | None, name: str) -> Obj:
        return await self.run(calls.delete(kind, namespace, name))

    async def get_status(self, kind: KindRef, namespace: str | None, name: str) -> Obj:
        return await self.run(calls.get_status(kind, namespace, name))

    async def put_status(self, obj: Obj) -> Obj:
        return await self.run(calls.put_status(obj))

    async def get_scale(self, namespace: str | None, name: str) -> Obj:
        return await self.run(calls.get_scale(namespace, name))

    async def scale(self, namespace: str | None, name: str, replicas: int) -> Obj:
        return await self.run(calls.scale(namespace, name, replicas))

    async def heartbeat(self, node: str) -> None:
        await self.run(calls.heartbeat(node))

    async def heartbeats(self, nodes: Sequence[str]) -> None:
        await self.run(calls.heartbeats(nodes))

    async def version(self) -> Obj:
        return await self.run(calls.version())

    async def watch(self, kind: KindRef, namespace: str | None = None, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout: float | None = None) -> AsyncIterator[tuple[str, Obj]]:
        """Like ``Client.watch``, as an async iterator."""
        info = calls.kind_info(kind)
        deadline = None if timeout is None else time.monotonic() + timeout
        params = calls.watch_params(resource_version, label_selector, field_selector)
        try:
            async with self._http.stream("GET", calls.watch_path(info, namespace), params=params,
                                         timeout=watch_timeout(timeout)) as response:
                if response.status_code >= 400:
                    await response.aread()
                    calls.decode_body(response)
                async for line in response.aiter_lines():
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
