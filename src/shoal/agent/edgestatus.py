"""The agent task that keeps the Node's edge facts (``status.rttMs``, ``status.power``) current.

Every interval (10 s) it measures RTT to each zone's probe target and reads the power supply
(``edgefacts``), refreshes the Node's labels from the server once a minute (the operator's power
labels and ``shoal.io/zone`` live there), and merge-patches the Node's status only when a value
moved meaningfully (``worth_writing``), so thousands of nodes do not load the store. Unreachable
server: it keeps measuring and writes when the server is back. It must not touch pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from shoal.agent.edgefacts import PowerReader, measure_rtts, merge_power, power_from_labels, worth_writing
from shoal.client import ApiError, AsyncClient, ClientError
from shoal.model.node import LABEL_ZONE

__all__ = ["EDGE_FACTS_SECONDS", "EdgeStatusReporter"]

log = logging.getLogger("shoal.agent.edge")
EDGE_FACTS_SECONDS = 10.0
_LABEL_REFRESH_EVERY = 6  # intervals


class EdgeStatusReporter:
    def __init__(self, node_name: str, zone_probes: Mapping[str, tuple[str, int]], labels: Mapping[str, str],
                 power: PowerReader | None = None, interval: float = EDGE_FACTS_SECONDS) -> None:
        self.node_name = node_name
        self.zone_probes = dict(zone_probes)
        self.labels = dict(labels)
        self.power = power or PowerReader()
        self.interval = interval
        self.written: dict[str, Any] | None = None  # what the Node shows, as far as this agent knows
        self._warned: set[str] = set()

    async def measure(self) -> dict[str, Any]:
        rtt = await measure_rtts(self.zone_probes, self.labels.get(LABEL_ZONE, ""))
        labelled, problems = power_from_labels(self.labels)
        for problem in problems:
            if problem not in self._warned:
                self._warned.add(problem)
                log.warning("node %s: %s; ignoring it", self.node_name, problem)
        return {"rttMs": rtt, "power": merge_power(self.power.read(), labelled)}

    async def _refresh(self, client: AsyncClient) -> None:
        node = await client.get("Node", None, self.node_name)
        self.labels = dict((node.get("metadata") or {}).get("labels") or {})
        status = node.get("status") or {}
        self.written = {"rttMs": status.get("rttMs") or {}, "power": status.get("power")}

    async def step(self, client: AsyncClient, refresh: bool) -> bool:
        """One round: measure, and write when it matters; True when the Node was written."""
        if refresh or self.written is None:
            await self._refresh(client)
        facts = await self.measure()
        old = self.written or {}
        if not worth_writing(old, facts):
            return False
        gone = {zone: None for zone in old.get("rttMs") or {} if zone not in facts["rttMs"]}
        patch = {"status": {"rttMs": {**gone, **facts["rttMs"]}, "power": facts["power"]}}
        await client.merge_patch("Node", None, self.node_name, patch)
        self.written = facts
        log.debug("node %s: edge facts %s", self.node_name, facts)
        return True

    async def run(self, client: AsyncClient, stop: asyncio.Event) -> None:
        rounds = 0
        while not stop.is_set():
            try:
                await self.step(client, refresh=rounds % _LABEL_REFRESH_EVERY == 0)
                rounds += 1
            except ApiError as exc:
                self.written = None  # read the Node again next time
                log.warning("node %s: edge facts not written: %s", self.node_name, exc)
            except ClientError as exc:
                self.written = None
                log.info("node %s: edge facts not written: %s", self.node_name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
