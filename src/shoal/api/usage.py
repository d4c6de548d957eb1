"""Recent resource usage of nodes and pods, pushed by agents, served in the Kubernetes metrics API shape.

An agent posts a compact sample to ``POST /api/v1/nodes/NAME/metrics`` every 10 s (its own node
only: the generic node rule of ``authz``). ``UsageStore`` keeps a bounded ring of recent samples per
node and per pod in memory (retention 15 min by default; nothing is written to the store, so a
fleet pushing usage does not load it). ``GET /apis/metrics.shoal.io/v1/...`` answers NodeMetrics and
PodMetrics lists for ``shoal top``; pods are joined with the store at read time, so a sample only
counts for a pod that exists and is bound to the node that reported it. It must not persist samples.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from shoal.api.errors import ApiError
from shoal.api.resources import ResourceAPI, kind_for
from shoal.model import Node, Pod
from shoal.model.quantity import format_bytes

__all__ = ["METRICS_API_VERSION", "UsageSample", "UsageStore", "format_cpu", "usage_paths", "usage_routes"]

METRICS_API_VERSION = "metrics.shoal.io/v1"
_BASE = "/apis/metrics.shoal.io/v1"
RETENTION_SECONDS = 15 * 60.0
FRESH_SECONDS = 120.0
_MAX_BODY = 1 << 20
_MAX_PODS = 1000
Clock = Callable[[], dt.datetime]


class ContainerUsage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    name: str
    cpu_nano_cores: int = 0
    memory_working_set_bytes: int = 0


class PodUsage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    namespace: str
    name: str
    uid: str
    containers: list[ContainerUsage] = msgspec.field(default_factory=list)


class NodeUsage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    cpu_nano_cores: int = 0
    memory_working_set_bytes: int = 0


class UsageSample(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """What an agent pushes: the node's and its pods' usage over the last ``window_seconds``."""

    timestamp: str = ""
    window_seconds: float = 10.0
    node: NodeUsage = msgspec.field(default_factory=NodeUsage)
    pods: list[PodUsage] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Point:
    at: dt.datetime  # when the server received it (agents' clocks may be off)
    window: float
    node: str
    usage: NodeUsage | PodUsage


def format_cpu(nano_cores: int) -> str:
    """CPU usage as a quantity in millicores, rounded up so a busy-but-small container is not "0m"."""
    return f"{math.ceil(max(0, nano_cores) / 1e6)}m"


def _usage(cpu: int, memory: int) -> dict[str, str]:
    return {"cpu": format_cpu(cpu), "memory": format_bytes(max(0, memory))}


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(seconds: float) -> str:
    return f"{seconds:g}s"


class UsageStore:
    """Rings of recent samples per node and per pod uid, pruned by age; one per server process."""

    def __init__(self, clock: Clock, retention: float = RETENTION_SECONDS, fresh: float = FRESH_SECONDS,
                 points: int = 90) -> None:
        self.clock = clock
        self.retention = dt.timedelta(seconds=retention)
        self.fresh = dt.timedelta(seconds=fresh)
        self._points = points
        self._nodes: dict[str, deque[_Point]] = {}
        self._pods: dict[str, deque[_Point]] = {}  # by pod uid

    def add(self, node: str, sample: UsageSample) -> None:
        now = self.clock()
        window = sample.window_seconds if 0 < sample.window_seconds < 3600 else 10.0
        self._nodes.setdefault(node, deque(maxlen=self._points)).append(_Point(now, window, node, sample.node))
        for pod in sample.pods:
            self._pods.setdefault(pod.uid, deque(maxlen=self._points)).append(_Point(now, window, node, pod))
        self.prune(now)

    def prune(self, now: dt.datetime) -> None:
        """Drop samples older than the retention, and series left empty."""
        cutoff = now - self.retention
        for table in (self._nodes, self._pods):
            for key in list(table):
                ring = table[key]
                while ring and ring[0].at < cutoff:
                    ring.popleft()
                if not ring:
                    del table[key]

    def _latest(self, ring: deque[_Point] | None) -> _Point | None:
        if not ring or ring[-1].at < self.clock() - self.fresh:
            return None
        return ring[-1]

    def history(self, node: str) -> list[tuple[dt.datetime, NodeUsage]]:
        return [(p.at, p.usage) for p in self._nodes.get(node, ()) if isinstance(p.usage, NodeUsage)]

    def node_metrics(self, name: str) -> dict[str, Any] | None:
        point = self._latest(self._nodes.get(name))
        if point is None or not isinstance(point.usage, NodeUsage):
            return None
        return {"apiVersion": METRICS_API_VERSION, "kind": "NodeMetrics", "metadata": {"name": name},
                "timestamp": _stamp(point.at), "window": _window(point.window),
                "usage": _usage(point.usage.cpu_nano_cores, point.usage.memory_working_set_bytes)}

    def nodes(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """NodeMetrics of the nodes with a fresh sample (only those in ``names`` when given)."""
        wanted = sorted(self._nodes if names is None else set(names) & set(self._nodes))
        return [m for name in wanted if (m := self.node_metrics(name)) is not None]

    def pod_metrics(self, pods: Iterable[Pod]) -> list[dict[str, Any]]:
        """PodMetrics of those ``pods`` whose latest fresh sample came from the node they are bound to."""
        out = []
        for pod in pods:
            point = self._latest(self._pods.get(pod.metadata.uid))
            if point is None or point.node != pod.spec.node_name or not isinstance(point.usage, PodUsage):
                continue
            out.append({"apiVersion": METRICS_API_VERSION, "kind": "PodMetrics",
                        "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace},
                        "timestamp": _stamp(point.at), "window": _window(point.window),
                        "containers": [{"name": c.name, "usage": _usage(c.cpu_nano_cores, c.memory_working_set_bytes)}
                                       for c in point.usage.containers]})
        return out


def decode_sample(body: bytes) -> UsageSample:
    if len(body) > _MAX_BODY:
        raise ApiError(413, f"a usage sample is at most {_MAX_BODY} bytes")
    try:
        sample = msgspec.json.decode(body, type=UsageSample)
    except msgspec.ValidationError as exc:
        raise ApiError(422, f"usage sample is invalid: {exc}; send "
                            '{"windowSeconds": 10, "node": {"cpuNanoCores": N, "memoryWorkingSetBytes": N}, '
                            '"pods": [...]}', kind="NodeMetrics") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the usage sample is not JSON: {exc}") from None
    if len(sample.pods) > _MAX_PODS:
        raise ApiError(422, f"a usage sample has at most {_MAX_PODS} pods (got {len(sample.pods)})",
                       kind="NodeMetrics")
    return sample


def _list(kind: str, items: list[dict[str, Any]]) -> Response[bytes]:
    body = {"apiVersion": METRICS_API_VERSION, "kind": f"{kind}List", "metadata": {}, "items": items}
    return Response(msgspec.json.encode(body), media_type="application/json")


def _subject(request: Request[Any, Any, Any]) -> str:
    return str((request.scope.get("state") or {}).get("subject") or "")


def usage_routes(usage: UsageStore, push_seconds: float = 10.0) -> list[HTTPRouteHandler]:
    """The push route for agents and the metrics API read routes, bound to ``usage``."""

    def resources(request: Request[Any, Any, Any]) -> ResourceAPI:
        if _subject(request).startswith("node:"):
            raise ApiError(403, "node credentials cannot read the metrics API; use an admin token")
        api: ResourceAPI = request.app.state["shoal"].resources
        return api

    # Same parameters as the generic /api/v1/{plural}/{name}/{sub} route (a static "nodes" would hide it).
    @post("/api/v1/{plural:str}/{name:str}/metrics", status_code=204)
    async def push(request: Request[Any, Any, Any], plural: str, name: str) -> None:
        if plural != "nodes":
            kind_for(plural)
            raise ApiError(404, f'{plural} have no subresource "metrics"')
        usage.add(name, decode_sample(await request.body()))

    @get(f"{_BASE}/nodes")
    async def list_nodes(request: Request[Any, Any, Any]) -> Response[bytes]:
        query = request.query_params
        result = await resources(request).list(kind_for("nodes"), None, query.get("labelSelector", ""),
                                               query.get("fieldSelector", ""))
        return _list("NodeMetrics", usage.nodes({o.metadata.name for o in result.items if isinstance(o, Node)}))

    @get(f"{_BASE}/nodes/{{name:str}}")
    async def read_node(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
        await resources(request).get(kind_for("nodes"), None, name)  # 404 for an unknown node
        found = usage.node_metrics(name)
        if found is None:
            raise ApiError(404, f"metrics not available yet for node {name}: its agent pushes every "
                                f"{push_seconds:g} s", kind="NodeMetrics", name=name)
        return Response(msgspec.json.encode(found), media_type="application/json")

    async def pods(request: Request[Any, Any, Any], namespace: str | None) -> Response[bytes]:
        query = request.query_params
        result = await resources(request).list(kind_for("pods"), namespace, query.get("labelSelector", ""),
                                               query.get("fieldSelector", ""))
        return _list("PodMetrics", usage.pod_metrics(p for p in result.items if isinstance(p, Pod)))

    @get(f"{_BASE}/namespaces/{{namespace:str}}/pods")
    async def list_namespaced_pods(request: Request[Any, Any, Any], namespace: str) -> Response[bytes]:
        return await pods(request, namespace)

    @get(f"{_BASE}/pods")
    async def list_all_pods(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await pods(request, None)

    return [push, list_nodes, read_node, list_namespaced_pods, list_all_pods]


def usage_paths(paths: dict[str, Any]) -> None:
    """The OpenAPI operations of the usage push and the metrics API."""
    from shoal.api.openapi import error_responses, parameter

    json = "application/json"
    usage = {"type": "object", "properties": {"cpu": {"type": "string"}, "memory": {"type": "string"}}}
    common = {"timestamp": {"type": "string"}, "window": {"type": "string"}, "metadata": {"type": "object"}}
    node = {"type": "object", "properties": {**common, "usage": usage}}
    pod = {"type": "object", "properties": {**common, "containers": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "usage": usage}}}}}

    def listing(item: dict[str, Any]) -> dict[str, Any]:
        return {"200": {"description": "OK", "content": {json: {"schema": {
            "type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                             "items": {"type": "array", "items": item}}}}}}}

    selectors = [parameter("labelSelector", "query"), parameter("fieldSelector", "query")]
    paths["/api/v1/nodes/{name}/metrics"] = {
        "parameters": [parameter("name")],
        "post": {"operationId": "pushNodeMetrics", "tags": ["nodes"],
                 "summary": "For the node's agent: its and its pods' recent usage (cpuNanoCores, "
                            "memoryWorkingSetBytes)",
                 "requestBody": {"required": True, "content": {json: {"schema": {"type": "object"}}}},
                 "responses": {"204": {"description": "stored"}, **error_responses("400", "401", "404", "422")}}}
    paths[f"{_BASE}/nodes"] = {"get": {"operationId": "listNodeMetrics", "tags": ["metrics"], "parameters": selectors,
                                       "responses": {**listing(node), **error_responses("400", "401")}}}
    paths[f"{_BASE}/nodes/{{name}}"] = {
        "parameters": [parameter("name")],
        "get": {"operationId": "readNodeMetrics", "tags": ["metrics"],
                "responses": {"200": {"description": "OK", "content": {json: {"schema": node}}},
                              **error_responses("401", "404")}}}
    paths[f"{_BASE}/namespaces/{{namespace}}/pods"] = {
        "parameters": [parameter("namespace")],
        "get": {"operationId": "listPodMetricsNamespaced", "tags": ["metrics"], "parameters": selectors,
                "responses": {**listing(pod), **error_responses("400", "401", "404")}}}
    paths[f"{_BASE}/pods"] = {"get": {"operationId": "listPodMetricsAllNamespaces", "tags": ["metrics"],
                                      "parameters": selectors,
                                      "responses": {**listing(pod), **error_responses("400", "401")}}}
