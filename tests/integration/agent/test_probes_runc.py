"""Probes on a real agent: a busybox httpd whose readiness (httpGet) flips when a file is removed
and comes back when it is restored, and whose liveness (exec) failure restarts the container."""

from __future__ import annotations

import subprocess
from typing import Any

from agentenv import AgentEnv, Server, wait_until
from test_agent_runc import get_pod

HTTPD = "mkdir -p /www && echo ok > /www/ready && echo ok > /www/alive && exec httpd -f -p 8080 -h /www"


def httpd_pod(image: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "httpd"},
            "spec": {"nodeName": "edge-1", "terminationGracePeriodSeconds": 2, "containers": [{
                "name": "web", "image": image, "command": ["sh", "-c", HTTPD],
                "ports": [{"name": "http", "containerPort": 8080}],
                # the default seccomp profile: httpd's listening socket must work under it
                "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 30},
                "readinessProbe": {"httpGet": {"port": 8080, "path": "/ready"}, "periodSeconds": 1,
                                   "failureThreshold": 1},
                "livenessProbe": {"exec": {"command": ["test", "-f", "/www/alive"]}, "periodSeconds": 1,
                                  "failureThreshold": 2}}]}}


def test_readiness_flips_and_liveness_restarts(agent_env: AgentEnv, server: Server, image: str) -> None:
    agent_env.start(token=server.join_token)
    runc = ["runc", "--root", str(agent_env.runc_root), "exec"]
    with server.http() as http:
        assert http.post("/api/v1/namespaces/default/pods", json=httpd_pod(image)).status_code == 201

        def web() -> dict[str, Any]:
            statuses: list[dict[str, Any]] = get_pod(http, "httpd")["status"].get("containerStatuses") or [{}]
            return statuses[0]

        def ready() -> str:
            conditions = get_pod(http, "httpd")["status"].get("conditions") or []
            return str({c["type"]: c["status"] for c in conditions}.get("Ready"))

        wait_until(lambda: ready() == "True", 60, "pod Ready (startup tcp, then readiness http)", 0.1)
        cid, pid = web()["containerId"], agent_env.runc_list()[web()["containerId"]][0]

        subprocess.run([*runc, cid, "rm", "/www/ready"], check=True, timeout=10)
        wait_until(lambda: ready() == "False", 10, "Ready=False after /www/ready is removed", 0.1)
        status = web()
        assert status["state"] == "Running" and status["restartCount"] == 0 and status["ready"] is False
        assert "Readiness probe failed" in status["message"] and "HTTP 404" in status["message"]

        subprocess.run([*runc, cid, "touch", "/www/ready"], check=True, timeout=10)
        wait_until(lambda: ready() == "True", 10, "Ready=True after /www/ready is back", 0.1)

        subprocess.run([*runc, cid, "rm", "/www/alive"], check=True, timeout=10)
        wait_until(lambda: web().get("restartCount") == 1 and web().get("state") == "Running", 30,
                   "restart after the liveness probe failed twice", 0.1)
        status = web()
        assert status["reason"] == "Unhealthy" and status["message"].startswith("Killing: Liveness probe failed")
        assert agent_env.runc_list()[cid][0] != pid  # a new process: the container was really restarted
        wait_until(lambda: ready() == "True", 30, "Ready again after the restart", 0.1)
