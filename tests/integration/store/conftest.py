"""Store integration fixtures: each contract test runs against FakeStore and SqliteStore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from storetest_support import StoreFactory

from shoal.store import FakeStore, SqliteStore


@pytest.fixture(params=["fake", "sqlite"])
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    async def factory(**options: Any) -> FakeStore | SqliteStore:
        if request.param == "fake":
            return FakeStore(**options)
        return await SqliteStore.open(tmp_path / "store.db", **options)

    return factory
