"""Pod start benchmark: create→Running through shoal (server API + a real agent) vs `podman run -d`
vs bare `runc run -d`, with the same busybox-static image already present on the node.

    shoal_p50_ms, shoal_p95_ms  POST a pod pinned to the node → its status shows Running (seen on a
                                watch stream, so the measurement adds no polling delay); 20 pods,
                                one after another, image present
    podman_p50_ms               `podman --runtime runc run -d` of the same image (loaded into podman's
                                storage from `shoal image save`), whole process
    runc_p50_ms                 `runc run -d` on an unpacked bundle of the same image, whole process
    agent_rss_mb                the agent's RSS with 10 pods running
    node_overhead_mb            agent + its conmons (+ any helper process it started), RSS summed

Both sides get their pod networking (``--network bridge``, the default): the shoal agent wires each
pod with CNI (bridge + host-local + portmap + bandwidth) and programs its nftables service table,
podman uses its netavark bridge. Each runs inside its own test-created network namespace (a
separate "host"), so nothing touches this machine's networking; the server and registry stay on
loopback and are forwarded in. ``--network none`` compares loopback-only pods on both sides.
Usage: python benchmarks/pod_start.py --json OUT [--pods 20] [--network bridge|none]. Runs as root
in < 5 min; server, registry, agent, containers, namespaces, podman storage and temp dirs are
removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # agentenv imports tests.tarballs
sys.path.insert(0, str(HERE.parent / "tests" / "integration" / "agent"))

import httpx  # noqa: E402
from agentenv import AgentEnv, free_port, kill_group, serve_busybox_image, start_server, wait_until  # noqa: E402
from netenv import Forwarder, host_netns  # noqa: E402

from _common import percentile  # noqa: E402

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


class PodWatch:
    """A watch on pods in a thread: the moment each pod is first seen Running."""

    def __init__(self, env: AgentEnv) -> None:
        self.env = env
        self.running: dict[str, float] = {}
        self.cond = threading.Condition()
        self.stop = False
        with env.server.http() as http:
            self.revision = http.get("/api/v1/namespaces/default/pods").json()["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError, ValueError, httpx.HTTPError):  # ends when the server stops
            self._follow()

    def _follow(self) -> None:
        with self.env.server.http() as http, http.stream(
                "GET", f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={self.revision}",
                timeout=None) as response:
            for line in response.iter_lines():
                if self.stop:
                    return
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                statuses = (obj.get("status") or {}).get("containerStatuses") or []
                if (obj.get("status") or {}).get("phase") == "Running" and statuses and all(
                        s.get("state") == "Running" for s in statuses):
                    with self.cond:
                        self.running.setdefault(obj["metadata"]["name"], time.perf_counter())
                        self.cond.notify_all()

    def wait(self, name: str, timeout: float = 30) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: name in self.running, timeout):
                raise TimeoutError(f"pod {name} did not become Running within {timeout}s")
            return self.running[name]


def pod(name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "bench-node", "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": image, "command": ["sh", "-c", LOOP]}]}}


def bench_shoal(env: AgentEnv, image: str, count: int) -> tuple[list[float], float, float]:
    watch = PodWatch(env)
    timings: list[float] = []
    with env.server.http() as http:
        http.post("/api/v1/namespaces/default/pods", json=pod("warm", image)).raise_for_status()
        watch.wait("warm", 120)  # pulls the image: not measured
        for i in range(count):
            name = f"p{i}"
            started = time.perf_counter()
            http.post("/api/v1/namespaces/default/pods", json=pod(name, image)).raise_for_status()
            timings.append((watch.wait(name) - started) * 1000)
        for i in range(10, count):  # keep 10 pods running for the memory figures
            http.delete(f"/api/v1/namespaces/default/pods/p{i}")
        http.delete("/api/v1/namespaces/default/pods/warm")
        wait_until(lambda: len(env.runc_list()) == 10, 60, "10 pods left running")
        time.sleep(2)
        agent = env.procs[-1].pid
        conmons = [int(p.read_text()) for p in env.data_dir.glob("containers/*/conmon.pid")]
        helpers = _children(agent)
        agent_kb = _rss_kb(agent)
        node_kb = agent_kb + sum(_rss_kb(p) for p in {*conmons, *helpers})
        for i in range(10):
            http.delete(f"/api/v1/namespaces/default/pods/p{i}")
        wait_until(lambda: not env.runc_list(), 60, "all pods removed")
    watch.stop = True
    return timings, agent_kb / 1024, node_kb / 1024


def bench_podman(tmp: Path, archive: Path, image: str, count: int, network: str) -> list[float]:
    store = ["--root", str(tmp / "podman"), "--runroot", str(tmp / "podman-run"), "--tmpdir", str(tmp / "ptmp")]
    run = [*PODMAN, *store]
    subprocess.run([*run, "load", "-q", "-i", str(archive)], check=True, capture_output=True, timeout=120)
    timings: list[float] = []
    with contextlib.ExitStack() as stack:
        if network == "bridge":  # netavark's bridge and firewall rules go into a namespace of our own
            netns = stack.enter_context(host_netns(tmp / "podman-host", "podman0"))
            run = ["nsenter", f"--net={netns}", *run]
        stack.callback(subprocess.run, [*run, "system", "reset", "-f"], capture_output=True, timeout=120)
        stack.callback(subprocess.run, [*run, "rm", "-f", "-a", "-t", "0"], capture_output=True, timeout=120)
        for i in range(count + 1):
            started = time.perf_counter()
            subprocess.run([*run, "run", "-d", "--network", network, *LIMITS, "--name", f"bench-{i}", image,
                            "sh", "-c", LOOP], check=True, capture_output=True, timeout=60)
            if i:  # the first run warms podman's caches, as the warm-up pod does for shoal
                timings.append((time.perf_counter() - started) * 1000)
    return timings


def bench_runc(tmp: Path, image_root: Path, image: str, count: int) -> list[float]:
    from shoal.agent.images import ImageService

    prepared = asyncio.run(ImageService(image_root).prepare(image))
    bundle, root = tmp / "bundle", tmp / "runc-bench"
    (bundle / "rootfs").mkdir(parents=True)
    for layer in reversed(prepared.lower_dirs):
        shutil.copytree(layer, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True, timeout=30)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["sh", "-c", LOOP])
    config["root"]["readonly"] = True
    (bundle / "config.json").write_text(json.dumps(config))
    ids = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(count + 1)]
    timings: list[float] = []
    try:
        for i, cid in enumerate(ids):
            started = time.perf_counter()
            subprocess.run(["runc", "--root", str(root), "run", "-d", "--bundle", str(bundle), cid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            if i:
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        for cid in ids:
            subprocess.run(["runc", "--root", str(root), "delete", "--force", cid], capture_output=True, timeout=30)
    return timings


@contextlib.contextmanager
def shoal_node(tmp: Path, log_level: str, network: str) -> Iterator[tuple[AgentEnv, str]]:
    server = start_server(tmp / "server", free_port(), tmp / "server.log")
    env = AgentEnv(tmp, server, tmp / "agent", tmp / "runc", f"/shoal-bench-{uuid.uuid4().hex[:8]}")
    try:
        with serve_busybox_image(tmp) as image, contextlib.ExitStack() as stack:
            if network == "bridge":
                env.bridge = f"sb{uuid.uuid4().hex[:8]}"
                env.netns = stack.enter_context(host_netns(tmp / "shoal-host", env.bridge))
                registry_port = int(image.split("/", 1)[0].rsplit(":", 1)[1])
                stack.callback(Forwarder(env.netns, [server.port, registry_port]).close)
                stack.callback(env.cleanup)  # the agent goes before its namespace does
            env.start("--log-level", log_level, token=server.join_token, name="bench-node")
            with server.http() as http:
                wait_until(lambda: http.get("/api/v1/nodes/bench-node").status_code == 200, 60, "node registration")
            yield env, image
    finally:
        env.cleanup()
        kill_group(server.process, signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--network", choices=("bridge", "none"), default="bridge",
                        help="pod networking on both sides (default: %(default)s)")
    parser.add_argument("--agent-log-level", default="warning", help="debug shows the agent's per-step timings")
    parser.add_argument("--keep-logs", default="", help="copy the agent's log here (for profiling)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-podstart-") as name:
        tmp = Path(name)
        with shoal_node(tmp, args.agent_log_level, args.network) as (env, image):
            shoal, agent_mb, node_mb = bench_shoal(env, image, args.pods)
            if args.keep_logs:
                Path(args.keep_logs).write_text(env.logs())
            archive = tmp / "image.tar"
            subprocess.run([sys.executable, "-m", "shoal", "image", "save", "--root", str(env.data_dir / "images"),
                            "-o", str(archive), image], check=True, capture_output=True, timeout=120)
            podman = bench_podman(tmp, archive, image, args.pods, args.network)
            runc = bench_runc(tmp, env.data_dir / "images", image, args.pods)
    result = {
        "pods": args.pods,
        "networking": ("CNI bridge (shoal) vs netavark bridge (podman), each in its own network namespace"
                       if args.network == "bridge" else "none (loopback only) on both sides"),
        "shoal_p50_ms": round(statistics.median(shoal), 1),
        "shoal_p95_ms": round(percentile(shoal, 95), 1),
        "podman_p50_ms": round(statistics.median(podman), 1),
        "podman_p95_ms": round(percentile(podman, 95), 1),
        "runc_p50_ms": round(statistics.median(runc), 1),
        "agent_rss_mb": round(agent_mb, 1),
        "node_overhead_mb": round(node_mb, 1),
        "raw_ms": {"shoal": [round(t, 1) for t in shoal], "podman": [round(t, 1) for t in podman],
                   "runc": [round(t, 1) for t in runc]},
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "raw_ms"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
