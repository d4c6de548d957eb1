"""Prometheus HTTP service discovery of node metrics endpoints: ``GET /api/v1/sd/nodes``.

An agent started with ``--metrics-bind HOST:PORT`` advertises where its ``/metrics`` is reachable in
the Node annotation ``shoal.io/metrics-address``; ``node_targets`` (pure) turns the Online nodes that
carry one into Prometheus' HTTP SD JSON (``[{"targets": [...], "labels": {...}}]``, one group per
node, labelled node, zone and arch). Admin only, like ``/metrics``. It must not probe the nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from shoal.api.errors import ApiError
from shoal.model import Node, NodePhase
from shoal.model.node import LABEL_ARCH, LABEL_ZONE

__all__ = ["METRICS_ADDRESS_ANNOTATION", "SD_NODES_PATH", "node_targets", "sd_paths", "sd_routes"]

METRICS_ADDRESS_ANNOTATION = "shoal.io/metrics-address"
SD_NODES_PATH = "/api/v1/sd/nodes"


def _valid_address(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536 and "/" not in address)


def node_targets(nodes: Iterable[Node]) -> list[dict[str, Any]]:
    """One SD target group per Online node that advertises a valid metrics address, sorted by name."""
    groups = []
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        address = node.metadata.annotations.get(METRICS_ADDRESS_ANNOTATION, "").strip()
        if node.status.phase != NodePhase.ONLINE or not _valid_address(address):
            continue
        info = node.status.node_info
        arch = node.metadata.labels.get(LABEL_ARCH) or (info.architecture if info is not None else "")
        groups.append({"targets": [address], "labels": {
            "node": node.metadata.name, "zone": node.metadata.labels.get(LABEL_ZONE, ""), "arch": arch}})
    return groups


def sd_routes() -> list[HTTPRouteHandler]:
    @get(SD_NODES_PATH)
    async def nodes(request: Request[Any, Any, Any]) -> Response[bytes]:
        subject = str((request.scope.get("state") or {}).get("subject") or "")
        if subject != "admin":
            raise ApiError(403, "only the admin token may read node discovery; use the file "
                                "`shoal monitoring prometheus-config` writes", reason="Forbidden")
        listed = await request.app.state["shoal"].store.list("Node")
        body = msgspec.json.encode(node_targets(n for n in listed.items if isinstance(n, Node)))
        return Response(body, media_type="application/json")

    return [nodes]


def sd_paths(paths: dict[str, Any]) -> None:
    """The OpenAPI operations of ``/metrics`` and node discovery."""
    from shoal.api.openapi import error_responses

    group = {"type": "object", "required": ["targets", "labels"], "properties": {
        "targets": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}
    paths[SD_NODES_PATH] = {"get": {
        "operationId": "discoverNodeMetrics", "tags": ["metrics"],
        "summary": "Prometheus HTTP service discovery: the metrics address of every Online node (admin only)",
        "responses": {"200": {"description": "target groups", "content": {"application/json": {"schema": {
            "type": "array", "items": group}}}}, **error_responses("401")}}}
    paths["/metrics"] = {"get": {
        "operationId": "serverMetrics", "tags": ["metrics"],
        "summary": "The server's metrics in the Prometheus text format (admin only)",
        "responses": {"200": {"description": "Prometheus text exposition", "content": {
            "text/plain": {"schema": {"type": "string"}}}}, **error_responses("401")}}}
