"""The generic controller runner: watches → keys → de-duplicating queue → reconcile → store writes.

A ``Reconciler`` is the pure part: which kinds it watches, how an object of each kind maps to
the keys it must look at, and ``reconcile(key, cache, now) -> Actions``. ``run_controllers``
owns everything else: one shared informer (cache + watch) per store, a ``WorkQueue`` and N
worker tasks per controller, an optional periodic sweep, per-key backoff on failure, requeues,
and applying Actions to the store. Writes go through the cache at once so the next reconcile
never acts on its own stale view. All tasks live in one ``asyncio.TaskGroup`` and end when
``stop`` is set. Reads for reconcile come only from the cache, never from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shoal.controllers.actions import Action, Actions, Create, Delete, EmitEvent, Key, Update, key_of, meta
from shoal.controllers.cache import Cache, Informer, ObjectStore, error_code
from shoal.controllers.events import EventRecorder
from shoal.controllers.queue import BACKOFF_BASE, BACKOFF_MAX, WorkQueue
from shoal.model import Object

WRITE_CONCURRENCY = 256  # store writes in flight per controller
RELATED_CHANGE_DELAY = 0.5  # seconds to coalesce changes of related objects into one reconcile
log = logging.getLogger(__name__)

KeyMapper = Callable[[Object, Cache], Iterable[Key]]
Enqueue = Callable[[Key], None]

# Kinds listed first are listed first: dependents before owners (see cache.Informer).
_LIST_ORDER = ("Pod", "Node")


class Reconciler(Protocol):
    """The pure half of a controller."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str:
        """The kind of the keys it reconciles (swept periodically when the controller asks)."""
        ...

    @property
    def watches(self) -> Mapping[str, KeyMapper]: ...

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions: ...

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        """Hook for outside triggers (node heartbeats); returns a detach function."""
        ...


def own_key(obj: Object, cache: Cache) -> list[Key]:
    return [key_of(obj)]


def controller_owner_key(owner_kind: str) -> KeyMapper:
    """Map an object to the key of its controller owner of ``owner_kind`` (same namespace)."""

    def mapper(obj: Object, cache: Cache) -> list[Key]:
        m = meta(obj)
        return [(owner_kind, m.namespace, ref.name) for ref in m.owner_references
                if ref.controller and ref.kind == owner_kind]

    return mapper


def no_trigger(enqueue: Enqueue) -> Callable[[], None]:
    return lambda: None


@dataclass
class ControllerStats:
    reconciles: int = 0
    failures: int = 0
    conflicts: int = 0
    writes: int = 0
    queue_depth: Callable[[], int] = field(default=lambda: 0, repr=False, compare=False)  # keys ready to run


@dataclass
class Controller:
    """A reconciler bound to a store and a clock, with its queue and worker settings."""

    reconciler: Reconciler
    store: ObjectStore
    clock: Callable[[], datetime]
    workers: int = 2
    sweep_interval: float | None = None
    backoff_base: float = BACKOFF_BASE
    backoff_max: float = BACKOFF_MAX
    stats: ControllerStats = field(default_factory=ControllerStats)

    @property
    def name(self) -> str:
        return self.reconciler.name

    async def run(self, stop: asyncio.Event) -> None:
        await run_controllers([self], stop)


class _Running:
    """One controller attached to a shared informer while ``run_controllers`` runs."""

    def __init__(self, controller: Controller, informer: Informer, recorder: EventRecorder) -> None:
        self.controller = controller
        self.reconciler = controller.reconciler
        self.informer = informer
        self.recorder = recorder
        self._concurrency = asyncio.Semaphore(WRITE_CONCURRENCY)
        self.queue: WorkQueue[Key] = WorkQueue(backoff_base=controller.backoff_base,
                                               backoff_max=controller.backoff_max)
        controller.stats.queue_depth = self.queue.__len__
        self._mappers = dict(self.reconciler.watches)

    def on_change(self, kind: str, old: Object | None, new: Object | None) -> None:
        mapper = self._mappers.get(kind)
        if mapper is None:
            return
        # A change to the reconciled kind itself is handled at once; changes to related objects
        # (a Deployment's pods) are coalesced, so that 10,000 pod status writes cost a few
        # reconciles of their owner rather than 10,000.
        delay = 0.0 if kind == self.reconciler.kind else RELATED_CHANGE_DELAY
        for obj in (old, new):
            if obj is not None:
                for key in mapper(obj, self.informer.cache):
                    self.queue.add_after(key, delay)

    async def sweep(self, interval: float) -> None:
        await self.informer.synced.wait()
        while True:
            await asyncio.sleep(interval)
            for key in self.informer.cache.keys(self.reconciler.kind):
                self.queue.add(key)

    async def worker(self) -> None:
        await self.informer.synced.wait()
        while True:
            key = await self.queue.get()
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: Key) -> None:
        stats = self.controller.stats
        stats.reconciles += 1
        try:
            actions = self.reconciler.reconcile(key, self.informer.cache, self.controller.clock())
            await self._apply(actions)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = self.queue.backoff(key)
            if error_code(exc) == 409:
                stats.conflicts += 1
                log.debug("%s %s: conflict, retrying in %.3fs: %s", self.reconciler.name, key, delay, exc)
            else:
                stats.failures += 1
                log.warning("%s %s: reconcile failed, retrying in %.3fs: %r",
                            self.reconciler.name, key, delay, exc)
            return
        self.queue.forget(key)
        if actions.result.requeue_after is not None:
            self.queue.add_after(key, actions.result.requeue_after)

    async def _apply(self, actions: Actions) -> None:
        """Apply the steps in order, running each run of same-kind steps concurrently: a
        Deployment scaled to 10,000 replicas waits for batched commits, not 10,000 round trips."""
        steps = list(actions.steps)
        start = 0
        while start < len(steps):
            end = start
            while end < len(steps) and type(steps[end]) is type(steps[start]):
                end += 1
            run = steps[start:end]
            if len(run) == 1:
                await self._apply_one(run[0])
            else:
                try:
                    async with asyncio.TaskGroup() as group:
                        for step in run:
                            group.create_task(self._bounded(step))
                except ExceptionGroup as failed:  # the key is retried: one cause is enough
                    raise failed.exceptions[0] from None
            start = end

    async def _bounded(self, step: Action) -> None:
        async with self._concurrency:
            await self._apply_one(step)

    async def _apply_one(self, step: Action) -> None:
        store, stats = self.controller.store, self.controller.stats
        if isinstance(step, EmitEvent):
            await self.recorder.record(step)
        elif isinstance(step, Create):
            created = await store.create(step.obj)
            stats.writes += 1
            self._write_through("ADDED", created)
        elif isinstance(step, Update):
            try:
                updated = await store.update(step.obj)
            except Exception as exc:
                if error_code(exc) != 404:
                    raise
                return  # deleted meanwhile; the watch will tell the cache
            stats.writes += 1
            self._write_through("MODIFIED", updated)
        elif isinstance(step, Delete):
            try:
                last = await store.delete(step.kind, step.namespace, step.name, step.resource_version)
            except Exception as exc:
                if error_code(exc) != 404:
                    raise
                return
            stats.writes += 1
            self._write_through("DELETED", last)

    def _write_through(self, event_type: str, obj: Object) -> None:
        try:
            revision = int(meta(obj).resource_version or 0)
        except ValueError:
            return
        self.informer.observe(event_type, obj, revision)


def _kinds(controllers: Sequence[Controller]) -> list[str]:
    kinds = [kind for c in controllers for kind in c.reconciler.watches]
    first = [k for k in _LIST_ORDER if k in kinds]
    return first + [k for k in dict.fromkeys(kinds) if k not in first]


async def run_controllers(controllers: Sequence[Controller], stop: asyncio.Event) -> None:
    """Run ``controllers`` until ``stop`` is set; controllers sharing a store share one informer."""
    groups: dict[int, list[Controller]] = {}
    for controller in controllers:
        groups.setdefault(id(controller.store), []).append(controller)
    detach: list[Callable[[], None]] = []
    running: list[_Running] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks: list[asyncio.Task[None]] = []
            for members in groups.values():
                store = members[0].store
                informer = Informer(store, _kinds(members))
                recorder = EventRecorder(store, members[0].clock)
                for controller in members:
                    attached = _Running(controller, informer, recorder)
                    running.append(attached)
                    informer.subscribe(attached.on_change)
                    detach.append(controller.reconciler.attach(attached.queue.add))
                    for index in range(max(1, controller.workers)):
                        tasks.append(group.create_task(attached.worker(), name=f"{controller.name}-{index}"))
                    if controller.sweep_interval:
                        tasks.append(group.create_task(attached.sweep(controller.sweep_interval)))
                tasks.append(group.create_task(informer.run(), name="informer"))
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        for undo in detach:
            undo()
        for attached in running:
            attached.queue.close()
