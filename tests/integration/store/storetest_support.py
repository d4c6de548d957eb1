"""Helpers for store tests: running async bodies bounded in time, opening a store for a block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from shoal.store import FakeStore, SqliteStore

StoreFactory = Callable[..., Awaitable[FakeStore | SqliteStore]]


def run(body: Callable[[], Coroutine[Any, Any, None]], timeout: float = 30.0) -> None:
    """Run an async test body on a fresh loop, bounded in time."""
    asyncio.run(asyncio.wait_for(body(), timeout))


@asynccontextmanager
async def opened(factory: StoreFactory, **options: Any) -> AsyncIterator[FakeStore | SqliteStore]:
    store = await factory(**options)
    try:
        yield store
    finally:
        await store.close()
