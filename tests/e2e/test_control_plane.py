"""The control plane as a user drives it: shoal apply/get/delete/scale/node against a real server
with hollow nodes (simulated agents that speak the public API)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer, start_server, stop_process, wait_for
from tests.e2e.conftest import SimFactory

WEB = """\
apiVersion: shoal/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web:1
        resources: {requests: {cpu: 100m, memory: 64Mi}}
"""


def _json(server: RunningServer, *args: str) -> Any:
    result = server.cli("get", *args, "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _pods(server: RunningServer, *args: str) -> list[dict[str, Any]]:
    return list(_json(server, "pods", *args)["items"])


def _running(server: RunningServer) -> list[dict[str, Any]]:
    return [p for p in _pods(server) if p["status"]["phase"] == "Running"]


def _nodes_online(server: RunningServer, count: int) -> bool:
    return sum(n["status"]["phase"] == "Online" for n in _json(server, "nodes")["items"]) == count


def test_deployment_lifecycle_through_the_cli(server: RunningServer, sim: SimFactory, tmp_path: Path) -> None:
    sim(3)
    wait_for(lambda: _nodes_online(server, 3), message="3 hollow nodes Online")
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    applied = server.cli("apply", "-f", str(manifest))
    assert applied.returncode == 0 and applied.stdout.strip() == "deployment.shoal/web created", applied
    wait_for(lambda: len(_running(server)) == 3, message="3 pods Running")
    nodes = {p["spec"]["nodeName"] for p in _running(server)}
    assert len(nodes) == 3, f"Spread should put the 3 replicas on 3 nodes, got {nodes}"
    assert server.cli("apply", "-f", str(manifest)).stdout.strip() == "deployment.shoal/web unchanged"
    table = server.cli("get", "pods")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["NAME", "READY", "STATUS"]

    victim = _running(server)[0]["metadata"]["name"]
    assert server.cli("delete", "pod", victim).returncode == 0
    wait_for(lambda: len(_running(server)) == 3 and victim not in {p["metadata"]["name"] for p in _pods(server)},
             message="the deleted pod is replaced")

    assert server.cli("scale", "deployment", "web", "--replicas", "5").returncode == 0
    wait_for(lambda: len(_running(server)) == 5, message="scaled to 5")
    assert server.cli("apply", "-f", str(manifest)).stdout.strip() == "deployment.shoal/web unchanged"
    assert len(_pods(server)) == 5  # re-applying the manifest does not undo the scale

    described = server.cli("describe", "deployment", "web")
    assert "SuccessfulCreate" in described.stdout, described.stdout

    assert server.cli("delete", "deployment", "web").returncode == 0
    wait_for(lambda: _pods(server) == [], message="the Deployment's pods are garbage-collected")


def test_a_typo_is_refused_with_the_field_and_the_fix(server: RunningServer, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(WEB.replace("memory: 64Mi", "memory: 64MB") + "---\n" +
                        WEB.replace("name: web}", "name: other}"))
    result = server.cli("apply", "-f", str(manifest))
    assert result.returncode == 1
    assert f'{manifest} (document 1, Deployment "web")' in result.stderr
    assert 'spec.template.spec.containers[0].resources.requests.memory: "64MB" is not a quantity; did you mean ' \
           '"64Mi"' in result.stderr
    assert "Traceback" not in result.stderr
    assert _json(server, "deployments")["items"] == []  # nothing stored, not even the valid document


def test_a_silent_node_goes_offline_and_its_deployment_pods_move(server: RunningServer, sim: SimFactory,
                                                                  tmp_path: Path) -> None:
    sim(2, prefix="stay")
    doomed = sim(1, prefix="gone")
    wait_for(lambda: _nodes_online(server, 3), message="3 nodes Online")
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    assert server.cli("apply", "-f", str(manifest)).returncode == 0
    bare = ("apiVersion: shoal/v1\nkind: Pod\nmetadata: {name: pinned}\n"
            "spec: {nodeName: gone-0000, containers: [{name: c, image: busybox:1}]}\n")
    assert server.cli("apply", "-f", "-", input=bare).returncode == 0
    wait_for(lambda: len(_running(server)) == 4, message="3 replicas and the bare pod Running")
    moved_from = {p["metadata"]["name"] for p in _running(server) if p["spec"]["nodeName"] == "gone-0000"}

    stop_process(doomed)
    silenced = time.monotonic()
    wait_for(lambda: _json(server, "node", "gone-0000")["status"]["phase"] == "Offline", timeout=15,
             message="the silent node is Offline")
    offline_after = time.monotonic() - silenced
    assert 5.5 <= offline_after <= 12, offline_after  # 8 s after the last heartbeat (sent every 2 s)

    def replaced() -> bool:
        pods = _pods(server)
        web = [p for p in pods if p["metadata"]["name"].startswith("web-")]
        return (len(web) == 3 and all(p["status"]["phase"] == "Running" for p in web)
                and all(p["spec"]["nodeName"].startswith("stay-") for p in web))

    wait_for(replaced, timeout=15, message="the Deployment's pods run on the remaining nodes")
    names = {p["metadata"]["name"] for p in _pods(server)}
    assert not (moved_from - {"pinned"}) & names
    pinned = _json(server, "pod", "pinned")
    assert pinned["spec"]["nodeName"] == "gone-0000"  # bare pods are never moved
    assert pinned["status"]["phase"] == "Unknown"
    events = server.cli("get", "events")
    assert "NodeOffline" in events.stdout or "Offline" in events.stdout


def test_cordon_and_drain(server: RunningServer, sim: SimFactory, tmp_path: Path) -> None:
    sim(2)
    wait_for(lambda: _nodes_online(server, 2), message="2 nodes Online")
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB.replace("replicas: 3", "replicas: 4"))
    assert server.cli("apply", "-f", str(manifest)).returncode == 0
    wait_for(lambda: len(_running(server)) == 4, message="4 pods Running")
    assert server.cli("node", "cordon", "sim-0000").returncode == 0
    wait_for(lambda: _json(server, "node", "sim-0000")["status"]["phase"] == "Maintenance",
             message="a cordoned node is in Maintenance")
    drained = server.cli("node", "drain", "sim-0000")
    assert drained.returncode == 0, drained.stderr
    wait_for(lambda: len(_running(server)) == 4 and all(p["spec"]["nodeName"] == "sim-0001"
                                                        for p in _running(server)),
             message="drained pods run on the other node")
    assert server.cli("node", "uncordon", "sim-0000").returncode == 0
    wait_for(lambda: _json(server, "node", "sim-0000")["status"]["phase"] == "Online", message="uncordoned")


def test_a_server_restart_never_declares_live_nodes_offline(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    first = start_server(data_dir)
    sim_process: subprocess.Popen[bytes] | None = None
    second: RunningServer | None = None
    try:
        from tests.conftest import SHOAL
        sim_process = subprocess.Popen([*SHOAL, "--config", str(first.config_path), "sim", "nodes", "--count", "3"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: _nodes_online(first, 3), message="3 nodes Online")
        first.kill(signal.SIGTERM)
        time.sleep(9)  # longer than the grace period, with the server down
        second = start_server(data_dir, port=first.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # for a whole grace period after the restart: no node Offline
            phases = {n["status"]["phase"] for n in _json(second, "nodes")["items"]}
            assert phases == {"Online"}, phases
            time.sleep(0.5)
    finally:
        if sim_process is not None:
            stop_process(sim_process)
        stop_process(first.process)
        if second is not None:
            stop_process(second.process)
