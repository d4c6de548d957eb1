"""The server's own Prometheus metrics: ``GET /metrics`` (admin only), request instrumentation, store timing.

``RequestMetrics`` is a raw ASGI middleware that counts every HTTP request by verb, resource and code
and times it (watch streams are counted, not timed); ``TimedStore`` wraps the store to time writes as
their callers see them (queue, batch commit, fsync). Both only bump plain counters on the event loop:
no locks and no label lookups per request. Everything else (store revision and size, objects per
kind, watches, nodes per phase, scheduler and controller queues) is read when ``/metrics`` is
scraped, from sources the server wiring hands in as plain callables: this module must not import
the scheduler, the controllers or the server, and must not keep anything a scrape does not need.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from shoal.api.auth import ASGIApp, Scope
from shoal.api.errors import ApiError
from shoal.model import KINDS, Node, NodePhase, Object, Selector
from shoal.store.protocol import ListResult, Store, StoreError, WatchIterator

__all__ = ["CONTENT_TYPE", "REQUEST_BUCKETS", "ControllerSource", "Histogram", "RequestMetrics", "SchedulerSource",
           "ServerMetrics", "TimedStore", "classify", "metrics_routes"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PLURALS = frozenset(info.plural for info in KINDS)
_SUBRESOURCES = frozenset({"status", "scale", "log", "exec", "attach", "portforward", "metrics", "binding",
                           "eviction", "rollback", "pause", "resume", "tunnel", "proxy"})
_OTHER_PATHS = {"/metrics": "metrics", "/healthz": "healthz", "/readyz": "readyz", "/version": "version",
                "/openapi.json": "openapi", "/cacerts": "cacerts", "/api/v1/heartbeats": "heartbeats",
                "/api/v1/join": "join", "/api/v1/sd/nodes": "sd"}
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "HEAD": "get", "OPTIONS": "options"}
_CODES = {code: str(code) for code in range(100, 600)}
_DB_SUFFIXES = ("", "-wal", "-shm")


class Histogram:
    """Cumulative-at-render bucket counts, a sum and a count: ``observe`` is a bisect and three adds."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


def classify(method: str, path: str, query: bytes = b"") -> tuple[str, str]:
    """(verb, resource) of a request with bounded values: Kubernetes-style verbs (list, get, watch,
    create, update, patch, delete, deletecollection) and plural[/subresource] of a known kind."""
    known = _OTHER_PATHS.get(path)
    parts = path.split("/")
    if known is None and len(parts) > 3 and parts[1] == "api" and parts[2] == "v1":
        rest = parts[3:]
        watching = rest[0] == "watch" and len(rest) > 1
        rest = rest[1:] if watching else rest
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in _PLURALS:
            rest = rest[2:]
        plural, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
        if plural in _PLURALS and len(rest) <= 3:
            resource = plural if not sub else f"{plural}/{sub if sub in _SUBRESOURCES else 'other'}"
            if method == "GET":
                watching = watching or b"watch=true" in query or b"watch=1" in query or b"watch=True" in query
                verb = "get" if name else ("watch" if watching else "list")
            else:
                verb = _VERBS.get(method, "other")
                if verb == "delete" and not name:
                    verb = "deletecollection"
            return verb, resource
    if known is None and parts[1:3] == ["apis", "metrics.shoal.io"]:
        known = "metrics.shoal.io"
    return ("get" if method == "GET" else _VERBS.get(method, "other")), known or "other"


@dataclass
class _Requests:
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    durations: dict[tuple[str, str, str], Histogram] = field(default_factory=dict)
    in_flight: int = 0
    watches: int = 0


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request (outermost, so 401s are counted too)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self._seen = metrics.requests

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen, started, status = self._seen, time.perf_counter(), 500
        verb, resource = classify(scope["method"], scope["path"], scope.get("query_string", b""))
        watch = verb == "watch"

        async def timed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        seen.in_flight += 1
        seen.watches += watch
        try:
            await self.app(scope, receive, timed_send)
        finally:
            seen.in_flight -= 1
            seen.watches -= watch
            key = (verb, resource, _CODES.get(status) or str(status))
            seen.counts[key] += 1
            if not watch:
                histogram = seen.durations.get(key)
                if histogram is None:
                    histogram = seen.durations[key] = Histogram(REQUEST_BUCKETS)
                histogram.observe(time.perf_counter() - started)


class TimedStore:
    """The store, with each write timed from call to committed result (``shoal_store_write_*``)."""

    def __init__(self, store: Store, metrics: ServerMetrics) -> None:
        self._store = store
        self._durations = {op: Histogram(STORE_BUCKETS) for op in ("create", "update", "delete")}
        self._failures: Counter[tuple[str, str]] = Counter()
        metrics.store_writes = self._durations
        metrics.store_failures = self._failures

    @property
    def revision(self) -> int:
        return self._store.revision

    @property
    def watchers(self) -> int:
        return int(getattr(self._store, "watchers", 0))

    async def _timed(self, op: str, write: Awaitable[Object]) -> Object:
        started = time.perf_counter()
        try:
            return await write
        except StoreError as exc:
            self._failures[(op, type(exc).__name__)] += 1
            raise
        finally:
            self._durations[op].observe(time.perf_counter() - started)

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        return await self._store.get(kind, namespace, name)

    async def list(self, kind: str, namespace: str | None = None, selector: Selector | None = None) -> ListResult:
        return await self._store.list(kind, namespace, selector)

    async def create(self, obj: Object) -> Object:
        return await self._timed("create", self._store.create(obj))

    async def update(self, obj: Object) -> Object:
        return await self._timed("update", self._store.update(obj))

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Object:
        return await self._timed("delete", self._store.delete(kind, namespace, name, resource_version))

    def watch(self, kind: str | None, namespace: str | None = None, from_revision: int = 0,
              selector: Selector | None = None) -> WatchIterator:
        return self._store.watch(kind, namespace, from_revision, selector)

    async def close(self) -> None:
        await self._store.close()


class ControllerSource(Protocol):
    """What the metrics read of a running controller (``shoal.controllers.Controller``)."""

    @property
    def name(self) -> str: ...

    @property
    def stats(self) -> Any: ...


class SchedulerSource(Protocol):
    """What the metrics read of the scheduling loop (``shoal.server.scheduling.SchedulerLoop``)."""

    on_round: Callable[[Sequence[object], float, float], None] | None

    @property
    def pending(self) -> Mapping[Any, None]: ...

    @property
    def parked(self) -> Mapping[Any, None]: ...

    @property
    def retry(self) -> Mapping[Any, float]: ...


_DECISIONS = {"Binding": "scheduled", "Unschedulable": "unschedulable", "Preemption": "preempting"}


class ServerMetrics:
    """Everything ``/metrics`` shows; ``render()`` reads the store and the sources, then encodes."""

    def __init__(self, store: Store, database: Path | None = None) -> None:
        self.store = store
        self.database = database
        self.requests = _Requests()
        self.store_writes: dict[str, Histogram] = {}
        self.store_failures: Counter[tuple[str, str]] = Counter()
        self.controllers: Sequence[ControllerSource] = ()
        self.scheduler: SchedulerSource | None = None
        self.attempts: Counter[str] = Counter()
        self.schedule_seconds = Histogram(REQUEST_BUCKETS)
        self.round_seconds = Histogram(REQUEST_BUCKETS)
        self._families: list[Metric] = []
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Families(self))

    def timed(self, store: Store) -> TimedStore:
        return TimedStore(store, self)

    def follow(self, scheduler: SchedulerSource | None = None, controllers: Sequence[ControllerSource] = ()) -> None:
        """Read these at scrape time; the scheduler reports each round through its ``on_round`` hook."""
        self.scheduler, self.controllers = scheduler, controllers
        if scheduler is not None:
            scheduler.on_round = self._on_round

    def _on_round(self, decisions: Sequence[object], schedule_seconds: float, round_seconds: float) -> None:
        for decision in decisions:
            self.attempts[_DECISIONS.get(type(decision).__name__, "other")] += 1
        self.schedule_seconds.observe(schedule_seconds)
        self.round_seconds.observe(round_seconds)

    async def render(self) -> bytes:
        objects = {info.kind: len((await self.store.list(info.kind)).items) for info in KINDS}
        nodes = (await self.store.list("Node")).items
        phases = Counter(str(n.status.phase or NodePhase.PENDING) for n in nodes if isinstance(n, Node))
        self._families = families(self, objects, phases, self._db_bytes())
        return generate_latest(self._registry)

    def _db_bytes(self) -> int | None:
        if self.database is None:
            return None
        total = 0
        for suffix in _DB_SUFFIXES:
            try:
                total += os.stat(f"{self.database}{suffix}").st_size
            except OSError:
                continue
        return total


class _Families(Collector):
    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics._families


def histogram_family(name: str, doc: str, labels: Sequence[str],
                     series: Mapping[Any, Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for values, histogram in sorted(series.items()):
        family.add_metric(list(values), histogram.buckets(), histogram.total)
    return family


def counter_family(name: str, doc: str, labels: Sequence[str],
                   series: Mapping[Any, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for values, value in sorted(series.items()):
        family.add_metric(list(values), value)
    return family


def gauge_family(name: str, doc: str, labels: Sequence[str],
                 series: Mapping[Any, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for values, value in sorted(series.items()):
        family.add_metric(list(values), value)
    return family


def families(metrics: ServerMetrics, objects: Mapping[str, int], phases: Mapping[str, int],
             db_bytes: int | None) -> list[Metric]:
    """The metric families of one scrape (pure over what ``render`` read)."""
    seen, store = metrics.requests, metrics.store
    out: list[Metric] = [
        counter_family("shoal_apiserver_requests", "HTTP requests by verb, resource and status code.",
                       ("verb", "resource", "code"), dict(seen.counts)),
        histogram_family("shoal_apiserver_request_duration_seconds", "Time to answer a request (watches excluded).",
                         ("verb", "resource", "code"), seen.durations),
        gauge_family("shoal_apiserver_requests_in_flight", "Requests being answered now.", (), {(): seen.in_flight}),
        gauge_family("shoal_apiserver_watch_streams", "Open watch streams of API clients.", (), {(): seen.watches}),
        histogram_family("shoal_store_write_duration_seconds", "Store writes from call to durable commit.",
                         ("operation",), {(op,): h for op, h in metrics.store_writes.items()}),
        counter_family("shoal_store_write_failures", "Store writes that failed, by error.",
                       ("operation", "error"), dict(metrics.store_failures)),
        gauge_family("shoal_store_revision", "The store's current revision.", (), {(): store.revision}),
        gauge_family("shoal_store_objects", "Stored objects by kind.", ("kind",),
                     {(kind,): count for kind, count in objects.items()}),
        gauge_family("shoal_watchers", "Open store watches (API clients, scheduler, controllers).", (),
                     {(): int(getattr(store, "watchers", 0))}),
        gauge_family("shoal_nodes", "Nodes by phase.", ("phase",),
                     {(str(p),): phases.get(str(p), 0) for p in NodePhase} | {(p,): n for p, n in phases.items()}),
    ]
    if db_bytes is not None:
        out.append(gauge_family("shoal_store_db_size_bytes", "Size of the database files (with its WAL).", (),
                                {(): db_bytes}))
    out.extend(_scheduler_families(metrics))
    out.extend(_controller_families(metrics.controllers))
    return out


def _scheduler_families(metrics: ServerMetrics) -> list[Metric]:
    loop = metrics.scheduler
    if loop is None:
        return []
    queues = {("active",): len(loop.pending), ("unschedulable",): len(loop.parked), ("backoff",): len(loop.retry)}
    return [
        counter_family("shoal_scheduler_schedule_attempts", "Scheduling decisions by result.", ("result",),
                       {(r,): metrics.attempts.get(r, 0) for r in (*_DECISIONS.values(), *metrics.attempts)}),
        histogram_family("shoal_scheduler_scheduling_algorithm_duration_seconds",
                         "Time the pure scheduler takes for one round.", (), {(): metrics.schedule_seconds}),
        histogram_family("shoal_scheduler_round_duration_seconds",
                         "Time of one scheduling round, commits included.", (), {(): metrics.round_seconds}),
        gauge_family("shoal_scheduler_pending_pods", "Pods waiting to be scheduled, by queue.", ("queue",), queues),
    ]


def _controller_families(controllers: Sequence[ControllerSource]) -> list[Metric]:
    depth: dict[tuple[str, ...], int] = {}
    reconciles: dict[tuple[str, ...], int] = {}
    retries: dict[tuple[str, ...], int] = {}
    writes: dict[tuple[str, ...], int] = {}
    for controller in controllers:
        name, stats = (controller.name,), controller.stats
        depth[name] = stats.queue_depth() if callable(getattr(stats, "queue_depth", None)) else 0
        reconciles[name] = stats.reconciles
        writes[name] = stats.writes
        retries[(controller.name, "conflict")] = stats.conflicts
        retries[(controller.name, "error")] = stats.failures
    return [
        gauge_family("shoal_controller_queue_depth", "Keys waiting in each controller's work queue.",
                     ("controller",), depth),
        counter_family("shoal_controller_reconciles", "Reconciles run.", ("controller",), reconciles),
        counter_family("shoal_controller_retries", "Reconciles retried with backoff, by reason.",
                       ("controller", "reason"), retries),
        counter_family("shoal_controller_writes", "Store writes made by reconciles.", ("controller",), writes),
    ]


def metrics_routes(metrics: ServerMetrics) -> list[HTTPRouteHandler]:
    """``GET /metrics`` in the Prometheus text format, for the admin token only."""

    @get("/metrics")
    async def scrape(request: Request[Any, Any, Any]) -> Response[bytes]:
        subject = str((request.scope.get("state") or {}).get("subject") or "")
        if subject != "admin":
            raise ApiError(403, "only the admin token may read /metrics; point Prometheus at a file holding it "
                                "(`shoal monitoring prometheus-config` writes one)", reason="Forbidden")
        return Response(await metrics.render(), media_type=CONTENT_TYPE)

    return [scrape]
