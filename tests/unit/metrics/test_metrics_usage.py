"""The server's usage store and the ``shoal top`` tables: recent samples per node and pod in the
metrics API shape, freshness and retention, pods joined with the node that runs them, and the rows
a user reads (cores, bytes, % of allocatable)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from shoal.api.errors import ApiError
from shoal.api.usage import UsageStore, decode_sample, format_cpu
from shoal.cli.top import format_memory, node_rows, pod_rows
from shoal.model import ObjectMeta, Pod
from shoal.model.pod import PodSpec

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def sample(cpu: int = 250_000_000, memory: int = 64 << 20, pods: list[dict[str, object]] | None = None) -> bytes:
    return msgspec.json.encode({"timestamp": "2026-01-01T00:00:00Z", "windowSeconds": 10,
                                "node": {"cpuNanoCores": cpu, "memoryWorkingSetBytes": memory}, "pods": pods or []})


def pod(name: str, uid: str, node: str, namespace: str = "default") -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=namespace, uid=uid), spec=PodSpec(node_name=node))


WEB = {"namespace": "default", "name": "web", "uid": "u1", "containers": [
    {"name": "app", "cpuNanoCores": 1_500_000, "memoryWorkingSetBytes": 3 << 20},
    {"name": "side", "cpuNanoCores": 1, "memoryWorkingSetBytes": 1 << 20}]}


def test_quantities() -> None:
    assert format_cpu(250_000_000) == "250m"
    assert format_cpu(1) == "1m"  # busy but small is not shown as idle
    assert format_cpu(0) == "0m"


def test_node_metrics_shape_and_freshness() -> None:
    clock = Clock()
    store = UsageStore(clock, retention=900, fresh=60)
    assert store.node_metrics("gw-1") is None
    store.add("gw-1", decode_sample(sample()))
    found = store.node_metrics("gw-1")
    assert found == {"apiVersion": "metrics.shoal.io/v1", "kind": "NodeMetrics", "metadata": {"name": "gw-1"},
                     "timestamp": "2026-01-01T00:00:00Z", "window": "10s",
                     "usage": {"cpu": "250m", "memory": "64Mi"}}
    assert [m["metadata"]["name"] for m in store.nodes()] == ["gw-1"]
    clock.now += dt.timedelta(seconds=61)
    assert store.node_metrics("gw-1") is None and store.nodes() == []  # stale: the agent stopped pushing


def test_rings_are_bounded_and_pruned_by_retention() -> None:
    clock = Clock()
    store = UsageStore(clock, retention=60, points=5)
    for i in range(8):
        clock.now = T0 + dt.timedelta(seconds=10 * i)
        store.add("gw-1", decode_sample(sample(cpu=i)))
    assert [u.cpu_nano_cores for _, u in store.history("gw-1")] == [3, 4, 5, 6, 7]
    clock.now = T0 + dt.timedelta(seconds=131)
    store.add("gw-2", decode_sample(sample()))
    assert store.history("gw-1") == []  # older than the retention: gone


def test_pod_metrics_only_for_pods_bound_to_the_reporting_node() -> None:
    store = UsageStore(Clock())
    other = {**WEB, "uid": "u2", "name": "db"}
    store.add("gw-1", decode_sample(sample(pods=[WEB, other])))
    items = store.pod_metrics([pod("web", "u1", "gw-1"), pod("db", "u2", "gw-9"), pod("gone", "u3", "gw-1")])
    assert [i["metadata"] for i in items] == [{"name": "web", "namespace": "default"}]
    assert items[0]["containers"] == [{"name": "app", "usage": {"cpu": "2m", "memory": "3Mi"}},
                                      {"name": "side", "usage": {"cpu": "1m", "memory": "1Mi"}}]


def test_bad_samples_name_the_problem() -> None:
    with pytest.raises(ApiError, match=r"usage sample is invalid.*cpuNanoCores") as exc:
        decode_sample(b'{"node": {"cpuNanoCores": "lots"}}')
    assert exc.value.code == 422
    with pytest.raises(ApiError, match="not JSON"):
        decode_sample(b"{")
    with pytest.raises(ApiError, match="at most 1000 pods"):
        decode_sample(sample(pods=[{**WEB, "uid": str(i)} for i in range(1001)]))


def test_top_node_rows_show_share_of_allocatable() -> None:
    nodes = [{"metadata": {"name": "gw-2"}, "status": {"allocatable": {"cpu": "2", "memory": "1Gi"}}},
             {"metadata": {"name": "gw-1"}, "status": {"capacity": {"cpu": "4", "memory": "2Gi"}}}]
    metrics = [{"metadata": {"name": "gw-2"}, "usage": {"cpu": "500m", "memory": "256Mi"}}]
    rows, missing = node_rows(nodes, metrics)
    assert rows == [["gw-1", "<unknown>", "<unknown>", "<unknown>", "<unknown>"],
                    ["gw-2", "500m", "25%", "256Mi", "25%"]]
    assert missing == ["gw-1"]


def test_top_pod_rows_per_pod_and_per_container() -> None:
    items = [{"metadata": {"name": "web", "namespace": "a"},
              "containers": [{"name": "app", "usage": {"cpu": "2m", "memory": "3Mi"}},
                             {"name": "side", "usage": {"cpu": "1m", "memory": "1Mi"}}]},
             {"metadata": {"name": "api", "namespace": "b"},
              "containers": [{"name": "app", "usage": {"cpu": "1m", "memory": "10Mi"}}]}]
    headers, rows = pod_rows(items, all_namespaces=False, containers=False)
    assert headers == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert rows == [["web", "3m", "4Mi"], ["api", "1m", "10Mi"]]
    headers, rows = pod_rows(items, all_namespaces=True, containers=True, sort_by="memory")
    assert headers == ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert rows[0] == ["b", "api", "app", "1m", "10Mi"] and len(rows) == 3


def test_top_memory_reads_like_kubectl_without_hiding_small_use() -> None:
    assert [format_memory(n) for n in (0, 600 << 10, 1 << 20, (5 << 20) + 7)] == ["0Mi", "600Ki", "1Mi", "5Mi"]


def test_the_metrics_api_is_in_the_openapi_document_with_unique_operation_ids() -> None:
    from shoal.api.openapi import build_openapi

    paths = build_openapi()["paths"]
    assert {"/api/v1/nodes/{name}/metrics", "/apis/metrics.shoal.io/v1/nodes", "/apis/metrics.shoal.io/v1/nodes/{name}",
            "/apis/metrics.shoal.io/v1/pods", "/apis/metrics.shoal.io/v1/namespaces/{namespace}/pods"} <= set(paths)
    ids = [op["operationId"] for item in paths.values() for op in item.values() if isinstance(op, dict)]
    assert len(ids) == len(set(ids))
