"""What metrics cost the agent's memory, measured in a real process with the agent's modules loaded
and its malloc tuning: reading 10 pods' containers, building samples, serving /metrics (which is the
first thing that loads prometheus_client) and answering scrapes stays within a few MB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = r'''
import socket, sys
from pathlib import Path
from shoal.agent.run import _tune_malloc
_tune_malloc()
import shoal.agent.agent, shoal.agent.pods, shoal.runtime.oci  # the agent's own load

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

base = rss()
assert "prometheus_client" not in sys.modules
from shoal.agent import metrics as m
assert "prometheus_client" not in sys.modules, "importing the collector must not load prometheus_client"
root = Path(sys.argv[1])
(root / "cg").mkdir()
(root / "cg" / "cgroup.controllers").write_text("cpu memory pids\n")
pods = []
for i in range(10):
    d = root / "cg" / "shoal" / f"u{i}" / f"u{i}-app"
    d.mkdir(parents=True)
    for name, text in (("cpu.stat", "usage_usec 2000\n"), ("memory.current", "8192\n"), ("memory.stat", "anon 1\n"),
                       ("memory.max", "max\n"), ("pids.current", "3\n"), ("cgroup.procs", "1\n")):
        (d / name).write_text(text)
    pods.append({"metadata": {"name": f"p{i}", "namespace": "default", "uid": f"u{i}"},
                 "status": {"phase": "Running", "containerStatuses": [
                     {"name": "app", "image": "busybox", "state": "Running", "containerId": f"u{i}-app"}]}})
collector = m.NodeMetrics("gw-1", lambda: pods, "/shoal", root, cgroup_root=root / "cg")
for _ in range(50):
    m.usage_sample(collector.read(), collector.read())
endpoint = m.serve_metrics("127.0.0.1:0", collector)
for _ in range(20):
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        body = b"".join(iter(lambda: sock.recv(65536), b""))
assert b'container_memory_working_set_bytes{container="app"' in body
endpoint.close()
print(f"{rss() - base:.2f}")
'''


def test_metrics_cost_the_agent_little_memory(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    cost = float(out.stdout.strip())
    print(f"\nmetrics RSS cost (10 pods, endpoint, 20 scrapes): {cost:.2f} MB")
    assert cost < 3.0
