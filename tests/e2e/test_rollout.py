"""Rollouts as a user drives them: shoal apply + shoal rollout against a real server with hollow
nodes. A hollow node reports a pod whose image contains "crash" as crash-looping (never Ready)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import SHOAL, RunningServer, wait_for
from tests.e2e.conftest import SimFactory

REPLICAS = 6


def manifest(image: str) -> str:
    return f"""\
apiVersion: shoal/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {REPLICAS}
  progressDeadlineSeconds: 5
  autoRollback: true
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 1}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
        resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
"""


def apply(server: RunningServer, tmp_path: Path, image: str) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(manifest(image))
    result = server.cli("apply", "-f", str(path))
    assert result.returncode == 0, result.stderr


def pods(server: RunningServer) -> list[dict[str, Any]]:
    with server.http() as http:
        response = http.get("/api/v1/namespaces/default/pods")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def serving(pod: dict[str, Any]) -> bool:
    status = pod.get("status", {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


def images_serving(server: RunningServer) -> list[str]:
    return sorted(p["spec"]["containers"][0]["image"] for p in pods(server) if serving(p))


def all_on(server: RunningServer, image: str) -> bool:
    current = pods(server)
    return len(current) == REPLICAS and all(serving(p) and p["spec"]["containers"][0]["image"] == image
                                            for p in current)


def deployment(server: RunningServer) -> dict[str, Any]:
    with server.http() as http:
        response = http.get("/api/v1/namespaces/default/deployments/web")
    assert response.status_code == 200, response.text
    return dict(response.json())


def template_image(server: RunningServer) -> str:
    return str(deployment(server)["spec"]["template"]["spec"]["containers"][0]["image"])


def start_fleet(server: RunningServer, sim: SimFactory, tmp_path: Path) -> None:
    sim(3)
    wait_for(lambda: sum(n["status"]["phase"] == "Online" for n in _nodes(server)) == 3, message="3 nodes Online")
    apply(server, tmp_path, "web:1")
    wait_for(lambda: all_on(server, "web:1"), timeout=30, message="6 pods of web:1 ready")


def _nodes(server: RunningServer) -> list[dict[str, Any]]:
    with server.http() as http:
        return list(http.get("/api/v1/nodes").json()["items"])


def test_rolling_update_keeps_five_of_six_ready_and_status_reports_it(server: RunningServer, sim: SimFactory,
                                                                      tmp_path: Path) -> None:
    start_fleet(server, sim, tmp_path)
    apply(server, tmp_path, "web:2")
    status = subprocess.Popen([*SHOAL, "--config", str(server.config_path), "rollout", "status", "deploy/web",
                               "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        samples: list[list[str]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            samples.append(images_serving(server))
            if all_on(server, "web:2"):
                break
            time.sleep(0.1)
        out, err = status.communicate(timeout=60)
    finally:
        if status.poll() is None:
            status.kill()
            status.wait(timeout=10)
    assert all_on(server, "web:2"), samples[-1]
    assert len(samples) >= 3, "the rollout should be sampled several times"
    assert min(len(s) for s in samples) >= REPLICAS - 1, [s for s in samples if len(s) < REPLICAS - 1][:3]
    assert any("web:2" in s and "web:1" in s for s in samples), "old and new pods should overlap"
    assert status.returncode == 0, err
    assert 'deployment "web" successfully rolled out' in out


def test_a_broken_rollout_rolls_back_and_history_and_undo_work(server: RunningServer, sim: SimFactory,
                                                               tmp_path: Path) -> None:
    start_fleet(server, sim, tmp_path)
    apply(server, tmp_path, "web:2")
    wait_for(lambda: all_on(server, "web:2"), timeout=30, message="6 pods of web:2 ready")
    done = server.cli("rollout", "status", "deploy/web", "--timeout", "30")
    assert done.returncode == 0 and "successfully rolled out" in done.stdout, done

    apply(server, tmp_path, "web:3-crash")
    wait_for(lambda: template_image(server) == "web:3-crash", message="v3 applied")
    failed = server.cli("rollout", "status", "deploy/web", "--timeout", "40")
    assert failed.returncode != 0, failed.stdout
    assert "rolled back" in failed.stderr and "CrashLoopBackOff" in failed.stderr, failed.stderr
    assert template_image(server) == "web:2"
    wait_for(lambda: all_on(server, "web:2"), timeout=30, message="back on 6 pods of web:2")
    with server.http() as http:
        events = http.get("/api/v1/namespaces/default/events").json()["items"]
    rolled = [e for e in events if e["reason"] == "RolledBack" and e["involvedObject"]["name"] == "web"]
    assert rolled and rolled[0]["type"] == "Warning", [e["reason"] for e in events]
    assert "progressDeadlineSeconds" in rolled[0]["message"] and "revision 2" in rolled[0]["message"]
    progressing = [c for c in deployment(server)["status"]["conditions"] if c["type"] == "RolledBack"]
    assert progressing and progressing[0]["reason"] == "ProgressDeadlineExceeded"
    again = server.cli("rollout", "status", "deploy/web", "--timeout", "10")
    assert again.returncode != 0, "a rolled-back rollout stays failed until the user starts another"

    history = server.cli("rollout", "history", "deploy/web")
    assert history.returncode == 0, history.stderr
    rows = {line.split()[0]: line for line in history.stdout.splitlines()[2:]}
    assert set(rows) == {"1", "3", "4"}, history.stdout
    assert "web:1" in rows["1"] and "web:3-crash" in rows["3"] and "web:2" in rows["4"] and "*" in rows["4"]

    undo = server.cli("rollout", "undo", "deploy/web", "--to-revision", "1")
    assert undo.returncode == 0 and "rolled back to revision 1" in undo.stdout, undo
    assert template_image(server) == "web:1"
    back = server.cli("rollout", "status", "deploy/web", "--timeout", "40")
    assert back.returncode == 0 and "successfully rolled out" in back.stdout, back
    assert all_on(server, "web:1")
    missing = server.cli("rollout", "undo", "deploy/web", "--to-revision", "42")
    assert missing.returncode == 1 and "revision 42 not found" in missing.stderr, missing
