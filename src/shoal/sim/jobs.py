"""Hollow nodes that let run-to-completion pods finish: Job pods end on simulated nodes.

A pod bound to one of the fleet's nodes, reported Running, with ``restartPolicy`` Never or
OnFailure, ends after ``shoal.io/sim-run-seconds`` (default 1 s) with exit code
``shoal.io/sim-exit-code`` (default 0): Succeeded for 0; otherwise Failed (Never) or restarted in
place with ``restartCount`` + 1 (OnFailure), as a real agent would. ``finished_status`` is pure;
``PodFinisher`` follows the pod watch through the public API only, like ``sim.nodes``. Pods with
``restartPolicy`` Always are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Collection
from typing import Any

from shoal.client import ApiError, AsyncClient, ClientError

log = logging.getLogger("shoal.sim")
ANNOTATION_RUN_SECONDS = "shoal.io/sim-run-seconds"
ANNOTATION_EXIT_CODE = "shoal.io/sim-exit-code"
DEFAULT_RUN_SECONDS = 1.0
TICK_SECONDS = 0.1
_ENDING = ("Never", "OnFailure")


def run_seconds(pod: dict[str, Any]) -> float:
    text = pod.get("metadata", {}).get("annotations", {}).get(ANNOTATION_RUN_SECONDS, "")
    try:
        return max(float(text), 0.0) if text else DEFAULT_RUN_SECONDS
    except ValueError:
        return DEFAULT_RUN_SECONDS


def exit_code(pod: dict[str, Any]) -> int:
    text = pod.get("metadata", {}).get("annotations", {}).get(ANNOTATION_EXIT_CODE, "0")
    return int(text) if text.lstrip("-").isdigit() else 1


def ends(pod: dict[str, Any]) -> bool:
    """A run-to-completion pod, Running, not being deleted."""
    return (pod.get("spec", {}).get("restartPolicy") in _ENDING and pod.get("status", {}).get("phase") == "Running"
            and not pod.get("metadata", {}).get("deletionTimestamp"))


def finished_status(pod: dict[str, Any], now: str) -> dict[str, Any]:
    """``pod`` after its containers exit with ``exit_code(pod)`` at ``now`` (RFC 3339)."""
    code = exit_code(pod)
    status = dict(pod.get("status", {}))
    restart = code != 0 and pod.get("spec", {}).get("restartPolicy") == "OnFailure"
    statuses = []
    for c in status.get("containerStatuses", []):
        if restart:
            statuses.append({**c, "restartCount": int(c.get("restartCount", 0)) + 1, "startedAt": now})
        else:
            statuses.append({**c, "state": "Stopped", "ready": False, "exitCode": code, "finishedAt": now,
                             "reason": "Completed" if code == 0 else "Error"})
    status["containerStatuses"] = statuses
    if not restart:
        status["phase"] = "Succeeded" if code == 0 else "Failed"
        status["conditions"] = [{**c, "status": "False", "lastTransitionTime": now} if c.get("type") in
                                ("Ready", "ContainersReady") else c for c in status.get("conditions", [])]
    return {**pod, "status": status}


class PodFinisher:
    """Ends the run-to-completion pods on ``nodes`` after their simulated run time."""

    def __init__(self, nodes: Collection[str]) -> None:
        self._nodes = set(nodes)
        self._due: dict[str, tuple[float, dict[str, Any]]] = {}  # pod uid -> (monotonic due time, latest pod)

    def offer(self, pod: dict[str, Any]) -> None:
        uid = pod.get("metadata", {}).get("uid", "")
        if not uid or pod.get("spec", {}).get("nodeName") not in self._nodes:
            return
        if not ends(pod):
            self._due.pop(uid, None)
            return
        started = self._due.get(uid)
        restarts = sum(int(c.get("restartCount", 0)) for c in pod.get("status", {}).get("containerStatuses", []))
        if started is None or restarts != sum(int(c.get("restartCount", 0)) for c in
                                              started[1].get("status", {}).get("containerStatuses", [])):
            self._due[uid] = (time.monotonic() + run_seconds(pod), pod)
        else:
            self._due[uid] = (started[0], pod)

    async def _follow(self, client: AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                items, revision = await client.list("pods")
                for pod in items:
                    self.offer(pod)
                async for kind, pod in client.watch("pods", None, revision):
                    if kind == "DELETED":
                        self._due.pop(pod.get("metadata", {}).get("uid", ""), None)
                    else:
                        self.offer(pod)
            except ClientError as exc:
                log.info("pod watch ended (%s); re-listing", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _finish(self, client: AsyncClient, uid: str, pod: dict[str, Any]) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            await client.put_status(finished_status(pod, now))
        except ApiError as exc:
            if exc.status_code == 404:
                self._due.pop(uid, None)
            return  # 409: a newer version is on its way through the watch; tried again next tick
        except ClientError as exc:
            log.warning("finishing %s failed: %s", pod.get("metadata", {}).get("name"), exc)
            return
        self._due.pop(uid, None)

    async def run(self, client: AsyncClient, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            follower = group.create_task(self._follow(client, stop))
            while not stop.is_set():
                now = time.monotonic()
                due = [(uid, pod) for uid, (when, pod) in list(self._due.items()) if when <= now]
                if due:
                    await asyncio.gather(*(self._finish(client, uid, pod) for uid, pod in due[:64]))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_SECONDS)
            follower.cancel()
