"""NodeNetwork against an in-memory client: the conflist is written once the own Node has a podCIDR
(and pods are poked), routes go to every other node, Services and Endpoints become one debounced
table sync; plus the pure pod helpers (hostPorts, bandwidth annotations, namespace joins)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_worker import sync, until

from shoal.agent.netwatch import NodeNetwork, node_routes
from shoal.agent.podnet import pod_bandwidth, pod_joins
from shoal.net.fake import FakePodNetwork
from shoal.runtime.protocol import NamespaceJoin


def node(name: str, cidr: str = "", ip: str = "") -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Node", "metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}


def endpoints(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "http", "port": 8080}]}]}


class Client:
    """list + watch of an in-memory store; ``send`` pushes a watch event."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.queues: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = defaultdict(asyncio.Queue)

    async def list(self, kind: str, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        return list(self.objects.get(kind, [])), "1"

    async def watch(self, kind: str, namespace: str | None, revision: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        while True:
            yield await self.queues[kind].get()


class Routes:
    def __init__(self) -> None:
        self.synced: list[dict[str, str]] = []

    async def sync(self, desired: dict[str, str]) -> None:
        self.synced.append(dict(desired))


class Table:
    def __init__(self) -> None:
        self.synced: list[tuple[list[str], list[str]]] = []

    def sync(self, services: Any, endpoints: Any) -> list[str]:
        self.synced.append((sorted(s.metadata.name for s in services),
                            [a.ip for e in endpoints for sub in e.subsets for a in sub.addresses]))
        return []


@pytest.fixture
def parts(tmp_path: Path) -> tuple[NodeNetwork, Routes, Table, list[str]]:
    written: list[str] = []
    conflist = tmp_path / "shoal.conflist"

    def write(cidr: str) -> bool:
        written.append(cidr)
        conflist.write_text(cidr)
        return True

    routes, table = Routes(), Table()
    net = NodeNetwork("n1", FakePodNetwork(), conflist, write, routes=routes, services=table, debounce=0.05)
    return net, routes, table, written


async def running(net: NodeNetwork, client: Client) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop) for _, loop in net.tasks(client, stop)]  # type: ignore[arg-type]
    return stop, tasks


@sync
async def test_conflist_waits_for_the_pod_cidr_then_pods_are_poked(parts: Any) -> None:
    net, routes, _, written = parts
    poked: list[bool] = []
    net.on_ready = lambda: poked.append(True)
    client = Client({"nodes": [node("n1", ip="192.0.2.1"), node("n2", "10.77.2.0/24", "192.0.2.2")]})
    stop, tasks = await running(net, client)
    try:
        await until(lambda: routes.synced, "routes")
        assert not net.ready() and written == [] and poked == []
        assert routes.synced[-1] == {"10.77.2.0/24": "192.0.2.2"}
        client.queues["nodes"].put_nowait(("MODIFIED", node("n1", "10.77.1.0/24", "192.0.2.1")))
        await until(lambda: poked == [True], "on_ready")
        assert written == ["10.77.1.0/24"] and net.ready()
        client.queues["nodes"].put_nowait(("ADDED", node("n3", "10.77.3.0/24", "192.0.2.3")))
        await until(lambda: "10.77.3.0/24" in routes.synced[-1], "a route to the new node")
        assert routes.synced[-1] == {"10.77.2.0/24": "192.0.2.2", "10.77.3.0/24": "192.0.2.3"}
        client.queues["nodes"].put_nowait(("DELETED", node("n2")))
        await until(lambda: routes.synced[-1] == {"10.77.3.0/24": "192.0.2.3"}, "the route to n2 removed")
        assert written == ["10.77.1.0/24"] and poked == [True]  # not rewritten for other nodes' changes
    finally:
        stop.set()
        for task in tasks:
            task.cancel()


@sync
async def test_a_burst_of_service_changes_is_one_table_sync(parts: Any) -> None:
    net, _, table, _ = parts
    client = Client({"services": [service("web")], "endpoints": []})
    client.objects["nodes"] = []
    stop, tasks = await running(net, client)
    try:
        await until(lambda: table.synced, "the first sync")
        assert table.synced == [(["web"], [])]
        for i in range(20):
            client.queues["endpoints"].put_nowait(("MODIFIED", endpoints("web", f"10.77.1.{i + 2}")))
        client.queues["services"].put_nowait(("ADDED", service("api")))
        await until(lambda: len(table.synced) >= 2, "a sync after the burst")
        await asyncio.sleep(0.2)
        assert table.synced[1:] == [(["api", "web"], ["10.77.1.21"])]
    finally:
        stop.set()
        for task in tasks:
            task.cancel()


def test_node_routes_skip_the_own_node_and_nodes_without_cidr_or_address() -> None:
    nodes = [node("me", "10.77.1.0/24", "192.0.2.1"), node("a", "10.77.2.0/24", "192.0.2.2"),
             node("b", "", "192.0.2.3"), node("c", "10.77.4.0/24")]
    assert node_routes(nodes, "me") == {"10.77.2.0/24": "192.0.2.2"}


def test_pod_helpers() -> None:
    assert pod_bandwidth({"metadata": {}}) is None
    bandwidth = pod_bandwidth({"metadata": {"annotations": {"kubernetes.io/egress-bandwidth": "1Gi"}}})
    assert bandwidth is not None and (bandwidth.ingress_rate, bandwidth.egress_rate) == (0, 2**30)
    with pytest.raises(ValueError, match=r"kubernetes.io/egress-bandwidth.*bits per second"):
        pod_bandwidth({"metadata": {"annotations": {"kubernetes.io/egress-bandwidth": "-5"}}})
    net = NamespaceJoin("network", "/run/shoal/netns/u1")
    assert pod_joins(0, None) == () and pod_joins(0, net) == (net,)
    assert [j.type for j in pod_joins(7, None)] == ["network", "ipc", "uts"]
    assert pod_joins(7, net) == (net, NamespaceJoin("ipc", "/proc/7/ns/ipc"), NamespaceJoin("uts", "/proc/7/ns/uts"))


@sync
async def test_a_lone_node_does_not_open_netlink_until_a_second_node_appears(parts: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    net, routes, _, _ = parts
    leftovers = False

    async def present() -> bool:
        return leftovers

    monkeypatch.setattr("shoal.agent.netwatch._shoal_routes_present", present)
    client = Client({"nodes": [node("n1", "10.77.1.0/24", "192.0.2.1")]})
    stop, tasks = await running(net, client)
    try:
        await until(net.ready, "the conflist")
        await asyncio.sleep(0.1)
        assert routes.synced == []
        client.queues["nodes"].put_nowait(("ADDED", node("n2", "10.77.2.0/24", "192.0.2.2")))
        await until(lambda: routes.synced == [{"10.77.2.0/24": "192.0.2.2"}], "a route once n2 exists")
        client.queues["nodes"].put_nowait(("DELETED", node("n2")))
        await until(lambda: routes.synced[-1] == {}, "the route removed again")
    finally:
        stop.set()
        for task in tasks:
            task.cancel()


@sync
async def test_routes_left_by_an_earlier_run_are_removed_on_a_lone_node(parts: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    net, routes, _, _ = parts

    async def present() -> bool:
        return True

    monkeypatch.setattr("shoal.agent.netwatch._shoal_routes_present", present)
    stop, tasks = await running(net, Client({"nodes": [node("n1", "10.77.1.0/24", "192.0.2.1")]}))
    try:
        await until(lambda: routes.synced == [{}], "a sync to no routes")
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
