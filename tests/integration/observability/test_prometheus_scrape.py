"""Monitoring end to end: Debian's real Prometheus, configured only by ``shoal monitoring
prometheus-config``, scrapes a real shoal server over HTTPS with the admin token and discovers a real
agent's ``/metrics`` (``--metrics-bind``) through the server's HTTP SD; its query API then returns the
server's request counter and the cAdvisor-named memory series of a pod running under runc."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from agentenv import AgentEnv, Server, free_port, kill_group, wait_until

PROMETHEUS = "/usr/bin/prometheus"
HOLD = "a=$(cat /bin/busybox /bin/busybox); trap 'exit 0' TERM; while true; do sleep 1; done"


@contextlib.contextmanager
def prometheus(config: Path, workdir: Path) -> Iterator[str]:
    """Prometheus on a loopback port with its own TSDB directory; stopped on exit, even on failure."""
    port = free_port()
    (workdir / "tsdb").mkdir()
    with open(workdir / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        kill_group(proc)


def query(base: str, expr: str) -> list[dict[str, Any]]:
    with contextlib.suppress(httpx.HTTPError):
        body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()
        if body.get("status") == "success":
            result: list[dict[str, Any]] = body["data"]["result"]
            return result
    return []


def test_prometheus_scrapes_server_and_discovered_node(agent_env: AgentEnv, server: Server, image: str,
                                                       tmp_path: Path) -> None:
    metrics_port = free_port()
    agent_env.start("--metrics-bind", f"127.0.0.1:{metrics_port}", token=server.join_token)
    with server.http() as http:
        def advertised() -> bool:
            node = http.get("/api/v1/nodes/edge-1")
            return node.status_code == 200 and node.json()["status"].get("phase") == "Online" and \
                node.json()["metadata"].get("annotations", {}).get("shoal.io/metrics-address") == \
                f"127.0.0.1:{metrics_port}"

        wait_until(advertised, 60, "node edge-1 Online advertising its metrics address", 0.2)
        discovered = http.get("/api/v1/sd/nodes").json()
        assert discovered == [{"targets": [f"127.0.0.1:{metrics_port}"],
                               "labels": {"node": "edge-1", "zone": "", "arch": discovered[0]["labels"]["arch"]}}]
        pod = {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "web"},
               "spec": {"nodeName": "edge-1", "terminationGracePeriodSeconds": 2,
                        "containers": [{"name": "app", "image": image, "command": ["sh", "-c", HOLD]}]}}
        assert http.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201

    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    config = workdir / "prometheus.yml"
    made = server.cli("monitoring", "prometheus-config", "--out", str(config), "--scrape-interval", "1s",
                      "--sd-refresh", "1s")
    assert made.returncode == 0, made.stderr
    assert yaml.safe_load(config.read_text())["scrape_configs"][0]["job_name"] == "shoal-server"
    check = subprocess.run(["/usr/bin/promtool", "check", "config", str(config)], capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr

    with prometheus(config, workdir) as base:
        def both_up() -> dict[str, str]:
            jobs = {r["metric"]["job"]: r["value"][1] for r in query(base, "up")}
            return jobs if jobs == {"shoal-server": "1", "shoal-nodes": "1"} else {}

        try:
            wait_until(both_up, 60, "both targets up in Prometheus", 0.5)
            by_verb = 'sum by (verb) (shoal_apiserver_requests_total{resource="pods"})'
            requests = wait_until(lambda: query(base, by_verb), 30, "shoal_apiserver_requests_total in Prometheus", 0.5)
            assert {r["metric"]["verb"] for r in requests} >= {"create"}
            memory = wait_until(lambda: query(base, 'container_memory_working_set_bytes{pod="web",container="app"}'),
                                90, "the pod's working set in Prometheus", 0.5)
            assert memory[0]["metric"]["node"] == "edge-1" and float(memory[0]["value"][1]) > 1_000_000
        except AssertionError:
            targets = httpx.get(f"{base}/api/v1/targets", timeout=5).text
            raise AssertionError(f"targets: {targets}\nprometheus log: {(workdir / 'prometheus.log').read_text()}\n"
                                 f"agent log: {agent_env.logs()[-3000:]}") from None
