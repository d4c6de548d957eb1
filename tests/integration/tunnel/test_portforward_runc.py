"""`shoal port-forward` as a user types it, against real busybox containers under runc, through a real
agent's tunnel to a real server: HTTP requests (one after another and at once) and a 1 MiB transfer
each way arrive intact on 127.0.0.1:LOCAL, svc/NAME reaches a Ready pod behind the Service, a pod
that is not Running gets an error naming it and its phase, and Ctrl-C stops the forwarder."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from agentenv import ROOT, AgentEnv, Server, free_port, wait_until

BIG = "".join(f"{i}\n" for i in range(1, 150001)).encode()  # what `seq 1 150000` writes: ~1 MiB


ECHO_CGI = "#!/bin/sh\\necho Content-Type: application/octet-stream\\necho\\nexec /bin/cat\\n"  # the request body back


def _web(name: str, image: str, http_port: int, node: str = "edge-1") -> dict[str, Any]:
    script = ("mkdir -p /tmp/www/cgi-bin && echo hello-from-pod > /tmp/www/index.html"
              " && busybox seq 1 150000 > /tmp/www/big"
              f" && printf '{ECHO_CGI}' > /tmp/www/cgi-bin/echo && busybox chmod 755 /tmp/www/cgi-bin/echo"
              f" && exec httpd -f -p 127.0.0.1:{http_port} -h /tmp/www")
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", script],
                                     "ports": [{"name": "http", "containerPort": http_port}]}]}}


def _phase(http: httpx.Client, name: str) -> str:
    return str(http.get(f"/api/v1/namespaces/default/pods/{name}").json().get("status", {}).get("phase"))


@contextlib.contextmanager
def _forward(server: Server, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """`shoal port-forward ARGS`, running until the block ends; the local ports it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "shoal", "--config", str(server.data_dir / "admin.yaml"),
                             "port-forward", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)
    try:
        assert proc.stdout is not None
        ports = []
        for _ in args[1:]:
            line = proc.stdout.readline()
            assert line.startswith("Forwarding from 127.0.0.1:"), (line, proc.stderr.read() if proc.stderr else "")
            ports.append(int(line.split(":")[1].split()[0]))
        yield proc, ports
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_port_forward_to_pod_and_service(agent_env: AgentEnv, server: Server, image: str) -> None:
    agent_env.start(token=server.join_token)
    http_port = free_port()  # pods share the agent's network namespace here: a port free on this host
    with server.http() as http:
        assert http.post("/api/v1/namespaces/default/pods", json=_web("web", image, http_port)
                         ).status_code == 201
        pending = _web("a-pending", image, http_port, node="nowhere")  # never Ready, sorts first
        assert http.post("/api/v1/namespaces/default/pods", json=pending).status_code == 201
        service = {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}
        assert http.post("/api/v1/namespaces/default/services", json=service).status_code == 201
        wait_until(lambda: _phase(http, "web") == "Running", 60, "pod Running", 0.1)
        wait_until(lambda: server.cli("exec", "web", "--", "wget", "-q", "-O", "-",
                                      f"http://127.0.0.1:{http_port}/index.html").stdout == "hello-from-pod\n",
                   30, "httpd in the pod", 0.2)

        with _forward(server, "web", f":{http_port}", f"0:{http_port}") as (proc, (local_http, second)):
            url = f"http://127.0.0.1:{local_http}/index.html"
            for _ in range(20):
                answer = httpx.get(url, timeout=20)
                assert (answer.status_code, answer.text) == (200, "hello-from-pod\n")
            with ThreadPoolExecutor(5) as pool:
                answers = list(pool.map(lambda _: httpx.get(url, timeout=20), range(5)))
            assert [(a.status_code, a.text) for a in answers] == [(200, "hello-from-pod\n")] * 5
            big = httpx.get(f"http://127.0.0.1:{local_http}/big", timeout=60)
            assert big.status_code == 200 and big.content == BIG  # 1 MiB from the pod
            upload = os.urandom(1 << 20)
            echoed = httpx.post(f"http://127.0.0.1:{second}/cgi-bin/echo", content=upload, timeout=60)
            assert echoed.status_code == 200 and echoed.content == upload  # 1 MiB to the pod and back
            missing = httpx.get(f"http://127.0.0.1:{local_http}/nope", timeout=20)
            assert missing.status_code == 404  # one connection's end does not end the forwarder
            assert httpx.get(url, timeout=20).text == "hello-from-pod\n"
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            assert proc.wait(timeout=15) == 0
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local_http), timeout=2):
                raise AssertionError("the forwarder still listens after Ctrl-C")

        chosen = free_port()
        with _forward(server, "svc/web", f"{chosen}:80") as (proc, ports):
            assert ports == [chosen]
            answer = httpx.get(f"http://127.0.0.1:{chosen}/index.html", timeout=20)
            assert (answer.status_code, answer.text) == (200, "hello-from-pod\n")

        not_running = server.cli("port-forward", "a-pending", "8080")
        assert not_running.returncode == 1
        assert 'pod "a-pending" is Pending; port-forward needs it Running' in not_running.stderr
        refused = http.post("/api/v1/namespaces/default/pods/a-pending/portforward", params={"port": "80"})
        assert refused.status_code == 400 and 'pod "a-pending" is Pending' in refused.json()["message"]
        unused = free_port()
        with _forward(server, "web", f":{unused}") as (proc, (local,)):
            with socket.create_connection(("127.0.0.1", local), timeout=20) as sock:
                sock.settimeout(20)
                assert sock.recv(10) == b""  # nothing listens there in the pod: the connection closes
            assert proc.stderr is not None
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=15) == 0
            errors = proc.stderr.read()
            assert f"nothing listens on port {unused} in the pod" in errors
