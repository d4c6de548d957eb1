"""Service path benchmark: HTTP request latency through a Service's ClusterIP (nftables DNAT on the
node) vs straight to the backend pod's IP, in the same run, against the same pod.

    direct_p50_us, direct_p99_us  wrk in a client pod's network namespace → http://POD_IP:8080/
    vip_p50_us, vip_p99_us        the same → http://CLUSTER_IP/ (port 80 → targetPort 8080)
    overhead_p50_us               vip_p50_us − direct_p50_us (target < 50 µs)

A real server and a real agent with pod networking (CNI bridge, nftables service table) run a
busybox httpd pod and an idle client pod; the agent runs in a network namespace this benchmark
creates (its "host"), so nothing touches this machine's networking. wrk (1 thread, 1 connection:
latency, not throughput; a Lua script writes its percentiles as JSON) runs in the client pod's
network namespace, so requests take the path a pod's do (pod → bridge → node → pod), 3 s per round,
alternating direct and ClusterIP for 5 rounds; the medians of the rounds are reported. busybox
httpd closes each connection, so every request pays a TCP handshake and, through the ClusterIP, a
new conntrack entry with its DNAT. Usage: python benchmarks/service_path.py --json OUT. Root; < 2 min; everything
is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "integration" / "agent"))

from agentenv import wait_until  # noqa: E402

from pod_start import shoal_node  # noqa: E402

HTTPD = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
IDLE = "trap 'exit 0' TERM; while true; do sleep 1; done"
NODE = "bench-node"
LUA = """
done = function(summary, latency, requests)
  io.write(string.format('{"p50": %d, "p99": %d, "requests": %d, "errors": %d}\\n',
    latency:percentile(50), latency:percentile(99), summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
    + summary.errors.timeout))
end
"""


def _status(http: Any, name: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/namespaces/default/pods/{name}")
    return dict(response.json().get("status") or {}) if response.status_code == 200 else {}


def _pod(name: str, image: str, command: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", command]}]}}


def _fetch(netns: Path, url: str) -> str:
    done = subprocess.run(["nsenter", f"--net={netns}", "timeout", "3", "busybox", "wget", "-qO-", url],
                          capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def wrk(netns: Path, url: str, script: Path, seconds: int) -> dict[str, int]:
    done = subprocess.run(["nsenter", f"--net={netns}", "wrk", "-t1", "-c1", f"-d{seconds}s", "-s", str(script),
                           url], capture_output=True, text=True, timeout=seconds + 30, check=True)
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["requests"] == 0 or result["errors"] > result["requests"] // 100:
        raise RuntimeError(f"wrk {url}: {result['requests']} requests, {result['errors']} errors:\n{done.stdout}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="per wrk run")
    args = parser.parse_args()
    direct: list[dict[str, int]] = []
    vip: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="shoal-svcpath-") as name:
        tmp = Path(name)
        script = tmp / "report.lua"
        script.write_text(LUA)
        with shoal_node(tmp, "warning", "bridge") as (env, image), env.server.http() as http:
            for name, command in (("web", HTTPD), ("client", IDLE)):
                http.post("/api/v1/namespaces/default/pods", json=_pod(name, image, command)).raise_for_status()
            service = {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": "web"},
                       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
            http.post("/api/v1/namespaces/default/services", json=service).raise_for_status()
            pod_ip = wait_until(lambda: _status(http, "web").get("phase") == "Running" and _status(http, "web")
                                .get("podIP"), 120, "the web pod Running with an IP")
            wait_until(lambda: _status(http, "client").get("phase") == "Running", 60, "the client pod Running")
            cluster_ip = wait_until(lambda: http.get("/api/v1/namespaces/default/services/web").json()["spec"]
                                    .get("clusterIP"), 30, "a ClusterIP")
            client_uid = http.get("/api/v1/namespaces/default/pods/client").json()["metadata"]["uid"]
            netns = Path(f"/proc/{env.runc_list()[f'{client_uid}-main'][0]}/ns/net")
            # a new connection per request: let the client reuse ports in TIME_WAIT (its own namespace only)
            subprocess.run(["nsenter", f"--net={netns}", "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True,
                           timeout=10)
            wait_until(lambda: _fetch(netns, f"http://{pod_ip}:8080/") == "ok", 30, "the pod answering", 0.2)
            wait_until(lambda: _fetch(netns, f"http://{cluster_ip}/") == "ok", 30, "the ClusterIP answering", 0.2)
            for _ in range(args.rounds):
                direct.append(wrk(netns, f"http://{pod_ip}:8080/", script, args.seconds))
                vip.append(wrk(netns, f"http://{cluster_ip}/", script, args.seconds))
            http.delete("/api/v1/namespaces/default/services/web")
            for name in ("web", "client"):
                http.delete(f"/api/v1/namespaces/default/pods/{name}")
            wait_until(lambda: not env.runc_list(), 60, "the pod removed")
    d50 = statistics.median(r["p50"] for r in direct)
    v50 = statistics.median(r["p50"] for r in vip)
    result = {
        "direct_p50_us": d50, "direct_p99_us": statistics.median(r["p99"] for r in direct),
        "vip_p50_us": v50, "vip_p99_us": statistics.median(r["p99"] for r in vip),
        "overhead_p50_us": v50 - d50,
        "requests_per_round": {"direct": [r["requests"] for r in direct], "vip": [r["requests"] for r in vip]},
        "load": f"wrk -t1 -c1 -d{args.seconds}s x{args.rounds} rounds each: one request in flight, a new "
                "connection per request",
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
