"""The server's /metrics: names and labels Prometheus users expect, request counting, admin-only access."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.api.metrics import REQUEST_BUCKETS, Histogram, RequestMetrics, ServerMetrics, classify, metrics_routes
from shoal.api.openapi import build_openapi
from shoal.api.routes import create_app
from shoal.api.sd import sd_routes
from shoal.model import Namespace, Node, NodePhase, NodeStatus, ObjectMeta
from shoal.store.fake import FakeStore

TOKENS = {"admin-token": "admin", "node-token": "node:gw-1"}
POD = {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "web"},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/namespaces/default/pods", b"", ("list", "pods")),
    ("GET", "/api/v1/namespaces/default/pods", b"watch=true", ("watch", "pods")),
    ("GET", "/api/v1/pods", b"labelSelector=a", ("list", "pods")),
    ("GET", "/api/v1/watch/namespaces/default/pods", b"", ("watch", "pods")),
    ("GET", "/api/v1/watch/nodes", b"", ("watch", "nodes")),
    ("GET", "/api/v1/namespaces/default/pods/web", b"", ("get", "pods")),
    ("PUT", "/api/v1/namespaces/default/pods/web/status", b"", ("update", "pods/status")),
    ("POST", "/api/v1/namespaces/default/pods", b"", ("create", "pods")),
    ("PATCH", "/api/v1/nodes/gw-1", b"", ("patch", "nodes")),
    ("DELETE", "/api/v1/namespaces/default/pods", b"", ("deletecollection", "pods")),
    ("DELETE", "/api/v1/namespaces/x", b"", ("delete", "namespaces")),
    ("GET", "/api/v1/namespaces", b"", ("list", "namespaces")),
    ("PUT", "/api/v1/namespaces/default/status", b"", ("update", "namespaces/status")),
    ("GET", "/api/v1/namespaces/default/pods/web/weird-sub", b"", ("get", "pods/other")),
    ("POST", "/api/v1/heartbeats", b"", ("create", "heartbeats")),
    ("GET", "/metrics", b"", ("get", "metrics")),
    ("GET", "/apis/metrics.shoal.io/v1/nodes", b"", ("get", "metrics.shoal.io")),
    ("GET", "/api/v1/no-such-kind/x", b"", ("get", "other")),
    ("GET", "/random/" + "x" * 300, b"", ("get", "other")),
    ("BREW", "/api/v1/pods", b"", ("other", "pods")),
])
def test_requests_are_classified_with_bounded_labels(method: str, path: str, query: bytes,
                                                      expected: tuple[str, str]) -> None:
    assert classify(method, path, query) == expected


def test_histogram_buckets_are_cumulative_with_le_semantics() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)
    assert histogram.buckets() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert histogram.total == pytest.approx(2.65)


@dataclass
class _Stats:
    reconciles: int = 7
    failures: int = 2
    conflicts: int = 3
    writes: int = 5

    def queue_depth(self) -> int:
        return 4


@dataclass
class _Controller:
    name: str
    stats: _Stats = field(default_factory=_Stats)


@dataclass
class _Loop:
    pending: dict[Any, None] = field(default_factory=lambda: {("d", "a"): None, ("d", "b"): None})
    parked: dict[Any, None] = field(default_factory=lambda: {("d", "c"): None})
    retry: dict[Any, float] = field(default_factory=dict)
    on_round: Any = None


class Binding:  # named like the scheduler's decisions: the metrics count decisions by type name
    pass


class Unschedulable:
    pass


def _app(store: FakeStore, metrics: ServerMetrics) -> httpx.AsyncClient:
    asgi, _ = create_app(metrics.timed(store), TOKENS.get, lambda names: None, lambda: dt.datetime.now(dt.UTC),
                         extra_routes=[*metrics_routes(metrics), *sd_routes()])
    transport = httpx.ASGITransport(app=RequestMetrics(asgi, metrics))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://shoal")


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _sample(families: dict[str, Any], family: str, name: str, **labels: str) -> float:
    for sample in families[family].samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in {families[family].samples}")


def test_metrics_show_requests_store_scheduler_controllers_and_nodes() -> None:
    async def scenario() -> tuple[str, list[int]]:
        store = FakeStore()
        await store.create(Namespace(metadata=ObjectMeta(name="default")))
        await store.create(Node(metadata=ObjectMeta(name="gw-1"), status=NodeStatus(phase=NodePhase.ONLINE)))
        await store.create(Node(metadata=ObjectMeta(name="gw-2"), status=NodeStatus(phase=NodePhase.OFFLINE)))
        metrics = ServerMetrics(store)
        loop = _Loop()
        metrics.follow(loop, [_Controller("deployment")])  # type: ignore[arg-type, list-item]
        loop.on_round([Binding(), Binding(), Unschedulable()], 0.002, 0.01)
        headers = {"Authorization": "Bearer admin-token"}
        async with _app(store, metrics) as client:
            codes = [(await client.post("/api/v1/namespaces/default/pods", json=POD, headers=headers)).status_code,
                     (await client.post("/api/v1/namespaces/default/pods", json=POD, headers=headers)).status_code,
                     (await client.get("/api/v1/namespaces/default/pods")).status_code]
            scrape = await client.get("/metrics", headers=headers)
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        return scrape.text, codes

    text, codes = asyncio.run(scenario())
    assert codes == [201, 409, 401]
    fams = _families(text)
    assert _sample(fams, "shoal_apiserver_requests", "shoal_apiserver_requests_total",
                   verb="create", resource="pods", code="201") == 1
    assert _sample(fams, "shoal_apiserver_requests", "shoal_apiserver_requests_total",
                   verb="create", resource="pods", code="409") == 1
    assert _sample(fams, "shoal_apiserver_requests", "shoal_apiserver_requests_total",
                   verb="list", resource="pods", code="401") == 1
    assert fams["shoal_apiserver_request_duration_seconds"].type == "histogram"
    assert _sample(fams, "shoal_apiserver_request_duration_seconds", "shoal_apiserver_request_duration_seconds_count",
                   verb="create", resource="pods", code="201") == 1
    buckets = [s for s in fams["shoal_apiserver_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["code"] == "201"]
    assert len(buckets) == len(REQUEST_BUCKETS) + 1 and buckets[-1].labels["le"] == "+Inf"
    # two creates went through the timed store (one failed); the setup's writes went around it
    assert _sample(fams, "shoal_store_write_duration_seconds", "shoal_store_write_duration_seconds_count",
                   operation="create") == 2
    assert _sample(fams, "shoal_store_write_failures", "shoal_store_write_failures_total",
                   operation="create", error="AlreadyExists") == 1
    assert _sample(fams, "shoal_store_objects", "shoal_store_objects", kind="Pod") == 1
    assert _sample(fams, "shoal_store_objects", "shoal_store_objects", kind="Node") == 2
    assert _sample(fams, "shoal_store_revision", "shoal_store_revision") >= 3
    assert "shoal_watchers" in fams
    assert _sample(fams, "shoal_nodes", "shoal_nodes", phase="Online") == 1
    assert _sample(fams, "shoal_nodes", "shoal_nodes", phase="Offline") == 1
    assert _sample(fams, "shoal_nodes", "shoal_nodes", phase="Maintenance") == 0
    assert _sample(fams, "shoal_scheduler_schedule_attempts", "shoal_scheduler_schedule_attempts_total",
                   result="scheduled") == 2
    assert _sample(fams, "shoal_scheduler_schedule_attempts", "shoal_scheduler_schedule_attempts_total",
                   result="unschedulable") == 1
    assert _sample(fams, "shoal_scheduler_pending_pods", "shoal_scheduler_pending_pods", queue="active") == 2
    assert _sample(fams, "shoal_scheduler_pending_pods", "shoal_scheduler_pending_pods", queue="unschedulable") == 1
    assert _sample(fams, "shoal_scheduler_round_duration_seconds", "shoal_scheduler_round_duration_seconds_count") == 1
    assert _sample(fams, "shoal_controller_queue_depth", "shoal_controller_queue_depth", controller="deployment") == 4
    assert _sample(fams, "shoal_controller_retries", "shoal_controller_retries_total",
                   controller="deployment", reason="conflict") == 3
    assert _sample(fams, "shoal_controller_retries", "shoal_controller_retries_total",
                   controller="deployment", reason="error") == 2


def test_metrics_and_discovery_need_the_admin_token() -> None:
    async def scenario() -> list[tuple[int, str]]:
        store = FakeStore()
        metrics = ServerMetrics(store)
        out = []
        async with _app(store, metrics) as client:
            for path in ("/metrics", "/api/v1/sd/nodes"):
                for headers in ({}, {"Authorization": "Bearer node-token"}, {"Authorization": "Bearer nope"}):
                    response = await client.get(path, headers=headers)
                    out.append((response.status_code, response.text))
        return out

    answers = asyncio.run(scenario())
    assert [code for code, _ in answers] == [401, 403, 401, 401, 403, 401]
    assert "only the admin token may read /metrics" in answers[1][1]


def test_openapi_documents_metrics_and_discovery() -> None:
    paths = build_openapi()["paths"]
    assert "get" in paths["/metrics"] and "get" in paths["/api/v1/sd/nodes"]


def test_scheduler_hook_sequence_type_is_what_the_loop_calls() -> None:
    seen: list[tuple[Sequence[object], float, float]] = []
    metrics = ServerMetrics(FakeStore())
    loop = _Loop()
    metrics.follow(loop)  # type: ignore[arg-type]
    loop.on_round = lambda *args: seen.append(args)  # the loop calls whatever is set last
    loop.on_round([Binding()], 0.0, 0.0)
    assert seen and metrics.attempts["scheduled"] == 0
