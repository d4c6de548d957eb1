"""NetworkPolicy enforcement on the node, as the agent drives it.

``NodePolicies`` mirrors the NetworkPolicies, Pods and Namespaces of all namespaces (with
``netwatch.mirror``) and, once all three are listed, re-applies the node's policy table
(``shoal.net.policy``) after every burst of changes: one debounced transaction, retried with backoff
when ``nft`` fails. Local pods are those whose ``spec.nodeName`` is this node. It never creates pod
sandboxes or touches the service table, and it only reads from the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shoal.agent.netwatch import Objects, keep_applied, mirror
from shoal.client import AsyncClient, to_model
from shoal.model.namespace import Namespace
from shoal.model.networkpolicy import NetworkPolicy
from shoal.model.pod import Pod

__all__ = ["POLICY_DEBOUNCE_SECONDS", "NodePolicies", "PolicyTable"]

log = logging.getLogger("shoal.agent.policy")
POLICY_DEBOUNCE_SECONDS = 0.05
_KINDS = ("networkpolicies", "pods", "namespaces")


class PolicyTable(Protocol):
    def sync(self, policies: Iterable[NetworkPolicy], pods: Iterable[Pod], namespaces: Iterable[Namespace],
             node_name: str) -> list[str]: ...

    def remove(self) -> None: ...


@dataclass
class NodePolicies:
    """Keeps ``table`` enforcing the cluster's NetworkPolicies for the pods of ``node_name``."""

    node_name: str
    table: PolicyTable
    debounce: float = POLICY_DEBOUNCE_SECONDS
    objects: dict[str, Objects] = field(default_factory=lambda: {kind: {} for kind in _KINDS})
    synced: int = 0  # how many times the table was applied (tests wait on it)
    _listed: set[str] = field(default_factory=set)
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)

    def _changed(self, kind: str) -> None:
        self._listed.add(kind)
        if self._listed >= set(_KINDS):  # never filter from a partial picture
            self._dirty.set()

    def _models(self, kind: str, cls: type[Any]) -> list[Any]:
        out = []
        for key, obj in list(self.objects[kind].items()):
            try:
                model = to_model(obj)
            except ValueError as exc:
                log.warning("%s %s/%s left out of the policy table: %s", obj.get("kind"), *key, exc)
                continue
            if isinstance(model, cls):
                out.append(model)
        return out

    async def apply(self) -> None:
        """Apply the table from the mirrored objects now."""
        policies = self._models("networkpolicies", NetworkPolicy)
        pods = self._models("pods", Pod)
        namespaces = self._models("namespaces", Namespace)
        problems = await asyncio.to_thread(self.table.sync, policies, pods, namespaces, self.node_name)
        self.synced += 1
        log.debug("policy table: %d policies over %d pods", len(policies), len(pods))
        for problem in problems:
            log.warning("policy table: %s", problem)

    def tasks(self, client: AsyncClient, stop: asyncio.Event) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The background loops to run under the agent's TaskGroup."""
        out: list[tuple[str, Coroutine[Any, Any, None]]] = [
            (f"{kind} (policy)", mirror(client, kind, self.objects[kind], functools.partial(self._changed, kind), stop))
            for kind in _KINDS]
        out.append(("policy table", keep_applied(self._dirty, stop, "policy table", self.apply, self.debounce)))
        return out
