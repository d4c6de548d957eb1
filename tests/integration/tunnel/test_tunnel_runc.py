"""`shoal logs` and `shoal exec` against real busybox containers under runc, through a real agent's
tunnel to a real server, and proof that the server never opens a connection to the node."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from agentenv import ROOT, AgentEnv, Server, wait_until

PRINTER = "for i in 1 2 3 4 5; do echo line $i; done; trap 'exit 0' TERM; while true; do sleep 1; done"
TICKER = "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"
CRASHER = "echo run; sleep 0.5; exit 1"


def _pod(name: str, image: str, script: str, restart: str = "Always") -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "edge-1", "terminationGracePeriodSeconds": 2, "restartPolicy": restart,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", script]}]}}


def _running(http: httpx.Client, name: str) -> bool:
    pod = http.get(f"/api/v1/namespaces/default/pods/{name}").json()
    return pod.get("status", {}).get("phase") == "Running"


def _restarts(http: httpx.Client, name: str) -> int:
    statuses = http.get(f"/api/v1/namespaces/default/pods/{name}").json().get("status", {}).get(
        "containerStatuses") or [{}]
    return int(statuses[0].get("restartCount") or 0)


def _tcp_sockets(pid: int) -> list[tuple[int, int, str]]:
    """(local port, remote port, state) of every TCP socket process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                              fields[3]))
    return found


def _assert_server_never_dials(server: Server, agent_pid: int, registry_port: int) -> None:
    """Every TCP socket of the server is its listener, a connection accepted on its port, or its registry
    mirror's to the registry; every established connection of the agent goes to the server's port (the
    agent dialled it, and pulls images through the server's mirror)."""
    mine = _tcp_sockets(server.process.pid)
    outbound = [s for s in mine if s[0] != server.port and s[1] != registry_port]
    assert outbound == [], f"the server holds connections it opened: {outbound}"
    assert any(state == "01" for _, _, state in mine), "expected the agent's tunnel connection on the server"
    agent_established = [s for s in _tcp_sockets(agent_pid) if s[2] == "01"]
    assert agent_established and all(remote == server.port for _, remote, _ in agent_established), agent_established


def _read_until(proc: subprocess.Popen[bytes], needle: bytes, timeout: float) -> bytes:
    assert proc.stdout is not None
    seen, deadline = b"", time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen


def test_logs_and_exec_through_the_tunnel(agent_env: AgentEnv, server: Server, image: str) -> None:
    registry_port = int(image.split("/")[0].rsplit(":", 1)[1])
    agent = agent_env.start(token=server.join_token)
    with server.http() as http:
        for name, script in (("printer", PRINTER), ("ticker", TICKER), ("crasher", CRASHER)):
            assert http.post("/api/v1/namespaces/default/pods", json=_pod(name, image, script)).status_code == 201
        wait_until(lambda: _running(http, "printer") and _running(http, "ticker"), 60, "pods Running", 0.1)

        def logs_ok() -> subprocess.CompletedProcess[str] | None:
            result = server.cli("logs", "printer")
            return result if result.returncode == 0 else None

        full = wait_until(logs_ok, 30, "the agent's tunnel", 0.2)  # 503 until the agent's tunnel is open
        assert full.stdout == "line 1\nline 2\nline 3\nline 4\nline 5\n"
        tail = server.cli("logs", "pod/printer", "--tail", "2")
        assert (tail.returncode, tail.stdout) == (0, "line 4\nline 5\n")

        follow = subprocess.Popen([sys.executable, "-m", "shoal", "--config", str(server.data_dir / "admin.yaml"),
                                   "logs", "ticker", "-f", "--tail", "1"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=ROOT)
        try:
            first = _read_until(follow, b"\n", 15)
            start = int(first.split()[1])
            more = _read_until(follow, b"tick %d\n" % (start + 3), 15)
            assert b"tick %d\ntick %d\n" % (start + 1, start + 2) in more, (first, more)
            _assert_server_never_dials(server, agent.pid, registry_port)  # while a follow stream is open
        finally:
            follow.kill()
            follow.wait(timeout=10)

        hi = server.cli("exec", "printer", "--", "sh", "-c", "echo hi; echo err >&2; exit 3")
        assert (hi.returncode, hi.stdout, hi.stderr) == (3, "hi\n", "err\n")
        hostname = server.cli("exec", "printer", "--", "hostname")
        assert (hostname.returncode, hostname.stdout) == (0, "printer\n")
        _assert_server_never_dials(server, agent.pid, registry_port)

        missing = server.cli("exec", "printer", "-c", "db", "--", "true")
        assert missing.returncode == 1
        assert 'container "db" not found in pod "printer"; its containers are main' in missing.stderr
        absent = server.cli("logs", "nope")
        assert absent.returncode == 1 and 'pod "nope" not found' in absent.stderr

        wait_until(lambda: _restarts(http, "crasher") >= 1, 30, "crasher restarted", 0.2)
        previous = server.cli("logs", "crasher", "--previous")
        assert (previous.returncode, previous.stdout) == (0, "run\n"), previous.stderr

    agent.terminate()
    agent.wait(timeout=20)
    offline = server.cli("logs", "printer")
    assert offline.returncode == 3
    assert "node edge-1 has no tunnel open (is its agent running?)" in offline.stderr
