"""The read side both backends share: get, list, watch and revisions served from ``MemoryCore``.

Reads never touch a database: a backend loads its committed state into the core at open and
applies each commit to it, so reads here are consistent with ``revision``. This module must
not write; writes are each backend's own business.
"""

from __future__ import annotations

from shoal.model import Object, Selector
from shoal.store.memory import MemoryCore, WatchStream
from shoal.store.protocol import ListResult, NotFound, Unavailable
from shoal.store.writes import missing, namespace_filter, request_key


class CoreReads:
    """Get/list/watch over a ``MemoryCore``; subclasses own ``_core`` and set ``_closed``."""

    _core: MemoryCore
    _closed: bool = False

    @property
    def revision(self) -> int:
        return self._core.revision

    @property
    def oldest_revision(self) -> int:
        """The oldest revision a watch can still replay from."""
        return self._core.oldest_revision

    @property
    def watchers(self) -> int:
        """How many watches are open (for metrics)."""
        return self._core.watchers

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        self._check_open()
        key = request_key(kind, namespace, name)
        obj = self._core.index.get(key)
        if obj is None:
            raise NotFound(missing(key))
        return obj

    async def list(self, kind: str, namespace: str | None = None,
                   selector: Selector | None = None) -> ListResult:
        self._check_open()
        items = self._core.index.list(kind, namespace_filter(kind, namespace), selector)
        return ListResult(items, self._core.revision)

    def watch(self, kind: str | None, namespace: str | None = None, from_revision: int = 0,
              selector: Selector | None = None) -> WatchStream:
        """Subscribes at once (so "from now" means from this call); raises ``Gone`` here, before
        any iteration, when ``from_revision`` was compacted away."""
        self._check_open()
        return self._core.watch(kind, namespace_filter(kind, namespace), from_revision, selector)
