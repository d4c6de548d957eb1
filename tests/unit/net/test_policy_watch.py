"""NodePolicies against an in-memory client: nothing is filtered before policies, pods and namespaces
are all listed; then every burst of changes is one table sync computed for this node's pods, and a
failing ``nft`` is retried."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

from shoal.agent.policywatch import NodePolicies
from shoal.model import Namespace, NetworkPolicy, Pod
from shoal.net.policy import PolicyTableError, compile_policies

NODE = "edge-1"


def pod(name: str, ip: str, labels: dict[str, str], node: str = NODE) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                                   "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": ip}}


def allow(name: str, source: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": source}}}]}]}}


class Client:
    """list + watch of an in-memory store (a list waits until its kind is there); put events on
    ``queues[kind]``."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.queues: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = defaultdict(asyncio.Queue)

    async def list(self, kind: str, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        while kind not in self.objects:
            await asyncio.sleep(0.01)
        return list(self.objects[kind]), "1"

    async def watch(self, kind: str, namespace: str | None, revision: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        while True:
            yield await self.queues[kind].get()


class Table:
    """Records, per sync, the (pod, direction) → allowed peers this node would enforce."""

    def __init__(self, failures: int = 0) -> None:
        self.synced: list[dict[tuple[str, str], list[tuple[str, ...] | None]]] = []
        self.failures = failures

    def sync(self, policies: Iterable[NetworkPolicy], pods: Iterable[Pod], namespaces: Iterable[Namespace],
             node_name: str) -> list[str]:
        if self.failures:
            self.failures -= 1
            raise PolicyTableError("nft rejected the policy table: busy")
        rules, problems = compile_policies(policies, pods, namespaces, node_name)
        self.synced.append({(r.key, r.direction): [m.peers for m in r.matches] for r in rules})
        return problems

    def remove(self) -> None:
        self.synced.append({})


async def until(check: Callable[[], object], what: str) -> None:
    for _ in range(300):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def run(body: Callable[[NodePolicies, Client, Table], Coroutine[Any, Any, None]], client: Client,
        table: Table) -> None:
    async def main() -> None:
        watcher = NodePolicies(NODE, table, debounce=0.05)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(loop) for _, loop in watcher.tasks(client, stop)]  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(body(watcher, client, table), 10)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


PODS = [pod("web", "10.77.0.2", {"app": "web"}), pod("client", "10.77.0.3", {"app": "client"}),
        pod("web-2", "10.77.1.2", {"app": "web"}, node="edge-2")]


def test_nothing_is_applied_before_all_three_kinds_are_listed_then_a_burst_is_one_sync() -> None:
    client = Client({"networkpolicies": [allow("p", "client")], "pods": PODS})  # namespaces: listed below

    async def body(watcher: NodePolicies, client: Client, table: Table) -> None:
        await asyncio.sleep(0.2)
        assert table.synced == [] and watcher.synced == 0
        client.objects["namespaces"] = []
        await until(lambda: table.synced, "the first sync")
        assert table.synced == [{("default/web", "ingress"): [("10.77.0.3",)]}]  # web-2 is another node's
        client.queues["pods"].put_nowait(("ADDED", pod("other", "10.77.0.4", {"app": "other"})))
        client.queues["networkpolicies"].put_nowait(("ADDED", allow("q", "other")))
        client.queues["pods"].put_nowait(("DELETED", PODS[1]))
        await until(lambda: len(table.synced) >= 2, "a sync after the burst")
        await asyncio.sleep(0.2)
        assert table.synced[1:] == [{("default/web", "ingress"): [("10.77.0.4",)]}]

    run(body, client, Table())


def test_a_failing_table_is_retried() -> None:
    client = Client({"networkpolicies": [allow("p", "client")], "pods": PODS, "namespaces": []})

    async def body(watcher: NodePolicies, client: Client, table: Table) -> None:
        await until(lambda: table.synced, "the sync after the failure")
        assert table.failures == 0 and watcher.synced == 1

    run(body, client, Table(failures=1))
