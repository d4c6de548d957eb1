"""End to end: a 10,000-replica Deployment on 1,000 hollow nodes, from `apply` until every pod
reports Running. Exercises the API, the Deployment controller, the scheduler and commits, and the
nodes' status writes together.

    .venv/bin/python benchmarks/e2e_schedule.py --json bench-results/e2e_schedule.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHOAL, BenchServer, running_server, write_json


class _Spec(msgspec.Struct, rename="camel"):
    node_name: str = ""


class _Status(msgspec.Struct):
    phase: str = ""


class _Pod(msgspec.Struct):
    spec: _Spec
    status: _Status


class _PodList(msgspec.Struct):
    items: list[_Pod]


_decode_pods = msgspec.json.Decoder(_PodList).decode  # only the fields counted: a light poller


def _count(server: BenchServer) -> tuple[int, int, int]:
    """(pods, bound, running) in the default namespace."""
    with server.http(timeout=60) as http:
        items = _decode_pods(http.get("/api/v1/namespaces/default/pods").content).items
    bound = sum(1 for p in items if p.spec.node_name)
    running = sum(1 for p in items if p.status.phase == "Running")
    return len(items), bound, running


def run(nodes: int, replicas: int, timeout: float) -> dict[str, object]:
    with running_server() as server:
        log = open(server.config_path.parent.parent / "sim.log", "wb")  # noqa: SIM115 - closed below
        sim = subprocess.Popen([*SHOAL, "--config", str(server.config_path), "sim", "nodes", "--count", str(nodes),
                                "--cpu", "8", "--memory", "16Gi", "--pods", "110"],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with server.http() as http:
                    listed = http.get("/api/v1/nodes").json()["items"]
                if sum(n["status"]["phase"] == "Online" for n in listed) == nodes:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("the hollow nodes did not come Online")
            deployment = {
                "apiVersion": "shoal/v1", "kind": "Deployment", "metadata": {"name": "fleet-app"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "fleet-app"}},
                         "template": {"metadata": {"labels": {"app": "fleet-app"}},
                                      "spec": {"containers": [{"name": "app", "image": "app:1", "resources": {
                                          "requests": {"cpu": "50m", "memory": "32Mi"}}}]}}}}
            started = time.monotonic()
            with server.http() as http:
                http.patch("/api/v1/namespaces/default/deployments/fleet-app", params={"fieldManager": "bench"},
                           content=json.dumps(deployment),
                           headers={"content-type": "application/apply-patch+json"}).raise_for_status()
            marks: dict[str, float] = {}
            samples = []
            while time.monotonic() - started < timeout:
                time.sleep(2.0)
                pods, bound, running = _count(server)
                elapsed = time.monotonic() - started
                samples.append({"t": round(elapsed, 1), "pods": pods, "bound": bound, "running": running})
                print(f"{elapsed:6.1f}s pods={pods} bound={bound} running={running}", flush=True)
                for key, value in (("all_created_s", pods), ("all_bound_s", bound), ("all_running_s", running)):
                    if value >= replicas and key not in marks:
                        marks[key] = round(elapsed, 2)
                if running >= replicas:
                    break
            else:
                raise RuntimeError(f"not all {replicas} pods were Running after {timeout}s")
        finally:
            os.killpg(sim.pid, signal.SIGTERM)
            sim.wait(timeout=30)
            log.close()
    return {"nodes": nodes, "replicas": replicas, **marks,
            "pods_running_per_s": round(replicas / marks["all_running_s"], 1), "progress": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args()
    write_json(args.json, run(args.nodes, args.replicas, args.timeout))


if __name__ == "__main__":
    main()
