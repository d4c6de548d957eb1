"""DaemonSets and Jobs as a user drives them: shoal apply against a real server with hollow nodes.

Hollow nodes report pods Running; ``shoal.sim.jobs.PodFinisher`` (run here next to them) lets
Never/OnFailure pods end, as a real agent's would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shoal.client import AsyncClient, Client, load_config
from shoal.sim.jobs import PodFinisher
from tests.conftest import RunningServer, wait_for
from tests.e2e.conftest import SimFactory

DAEMONSET = """\
apiVersion: shoal/v1
kind: DaemonSet
metadata: {name: node-agent}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      containers:
      - {name: agent, image: agent:1, resources: {requests: {cpu: 50m, memory: 16Mi}}}
"""

JOB = """\
apiVersion: shoal/v1
kind: Job
metadata: {name: crunch}
spec:
  completions: 9
  parallelism: 3
  backoffLimit: 2
  template:
    metadata: {annotations: {shoal.io/sim-run-seconds: "0.4"}}
    spec:
      restartPolicy: Never
      containers:
      - {name: crunch, image: crunch:1, resources: {requests: {cpu: 100m, memory: 32Mi}}}
"""


def _apply(server: RunningServer, manifest: str) -> None:
    result = server.cli("apply", "-f", "-", input=manifest)
    assert result.returncode == 0, result.stderr + server.log()


def _pods(client: Client, selector: str) -> list[dict[str, Any]]:
    items, _ = client.list("pods", "default", label_selector=selector)
    return items


def _running_on(client: Client, selector: str) -> dict[str, str]:
    """node -> phase of the (live) pods matching ``selector``."""
    return {p["spec"].get("nodeName", ""): p["status"]["phase"] for p in _pods(client, selector)
            if not p["metadata"].get("deletionTimestamp")}


@contextmanager
def _finisher(server: RunningServer, nodes: list[str]) -> Iterator[None]:
    stop_flag = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        async with AsyncClient(load_config(str(server.config_path))) as client:
            task = asyncio.create_task(PodFinisher(nodes).run(client, stop))
            while not stop_flag.is_set():
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 10)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop_flag.set()
        thread.join(timeout=15)


def test_daemonset_covers_every_node_and_a_node_that_joins_later(server: RunningServer, sim: SimFactory) -> None:
    sim(3, prefix="edge")
    with Client(load_config(str(server.config_path))) as client:
        wait_for(lambda: len(client.list("nodes")[0]) == 3, message="3 hollow nodes registered")
        _apply(server, DAEMONSET)
        wanted = {"edge-0000": "Running", "edge-0001": "Running", "edge-0002": "Running"}
        wait_for(lambda: _running_on(client, "app=node-agent") == wanted, timeout=20,
                 message="one Running node-agent pod per node")
        sim(1, prefix="late")
        joined = time.monotonic()
        wait_for(lambda: _running_on(client, "app=node-agent").get("late-0000") == "Running", timeout=10,
                 message="the late node gets its pod")
        assert time.monotonic() - joined < 10
        assert len(_pods(client, "app=node-agent")) == 4  # still one per node
        ds = client.get("daemonsets", "default", "node-agent")
        wait_for(lambda: client.get("daemonsets", "default", "node-agent")["status"]["numberReady"] == 4,
                 message="status counts 4 ready nodes")
        assert ds["status"]["desiredNumberScheduled"] in (3, 4)
        _apply(server, DAEMONSET.replace("agent:1", "agent:2").replace(
            "  selector:", "  updateStrategy: {rollingUpdate: {maxUnavailable: 2}}\n  selector:"))
        nodes = {"edge-0000", "edge-0001", "edge-0002", "late-0000"}
        worst = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pods = [p for p in _pods(client, "app=node-agent") if not p["metadata"].get("deletionTimestamp")]
            serving = {p["spec"]["nodeName"] for p in pods if p["status"]["phase"] == "Running"}
            worst = max(worst, len(nodes - serving))
            images = {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in pods
                      if p["status"]["phase"] == "Running"}
            if images == dict.fromkeys(nodes, "agent:2") and len(pods) == 4:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"rolling update did not finish: {_running_on(client, 'app=node-agent')}")
        assert worst <= 2, f"{worst} nodes were without a running pod at once (maxUnavailable 2)"
        client.delete("daemonsets", "default", "node-agent")
        wait_for(lambda: _pods(client, "app=node-agent") == [], message="pods collected with their DaemonSet")


def test_job_runs_nine_completions_three_at_a_time(server: RunningServer, sim: SimFactory) -> None:
    sim(3, prefix="sim")
    with Client(load_config(str(server.config_path))) as client, \
            _finisher(server, ["sim-0000", "sim-0001", "sim-0002"]):
        wait_for(lambda: len(client.list("nodes")[0]) == 3, message="3 hollow nodes registered")
        _apply(server, JOB)
        peak = 0
        deadline = time.monotonic() + 60
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            pods = _pods(client, "shoal.io/job-name=crunch")
            active = [p for p in pods if p["status"]["phase"] not in ("Succeeded", "Failed")]
            peak = max(peak, len(active))
            job = client.get("jobs", "default", "crunch")
            if any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions", [])):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"job did not complete: {job.get('status')}\n{server.log()[-3000:]}")
        pods = _pods(client, "shoal.io/job-name=crunch")
        assert sum(1 for p in pods if p["status"]["phase"] == "Succeeded") == 9
        assert len(pods) == 9
        assert 1 <= peak <= 3
        assert job["status"]["succeeded"] == 9 and job["status"]["active"] == 0
        listed = server.cli("get", "jobs")
        assert listed.returncode == 0 and "crunch" in listed.stdout, listed.stderr
        missing = server.cli("logs", "job/nope")
        assert missing.returncode == 1 and 'job "nope" has no pods' in missing.stderr
