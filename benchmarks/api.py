"""API write throughput with watchers: 10,000 pod creates over HTTPS from 50 connections while
100 watchers follow the namespace.

The load generator is wrk (C, two threads) with a Lua script that posts unique pods and stops
after its share; a separate process holds the 100 watch streams and, a few times a second,
creates a probe pod and times how long after the create was acknowledged each watcher sees it.
Writes creates_per_s, create_p99_ms (wrk's latency distribution) and watch_lag_p99_ms. The pods
name a node (``spec.nodeName``) so that the scheduler stays out of the measurement: this is the
API's write and watch path alone (benchmarks/e2e_schedule.py measures scheduling).

    .venv/bin/python benchmarks/api.py --json bench-results/api.json
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BenchServer, percentile, running_server, write_json

NAMESPACE = "bench"
LUA = r"""
local counter = 0
local per_thread = tonumber(os.getenv("SHOAL_PER_THREAD"))
local token = os.getenv("SHOAL_TOKEN")
local threads = {}
local thread_id = 0
function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end
function init(args)
  created = 0
  failed = 0
  sent = 0
end
function request()
  sent = sent + 1
  local name = string.format("load-%d-%d", id, sent)
  local body = '{"apiVersion":"shoal/v1","kind":"Pod","metadata":{"name":"' .. name ..
    '","labels":{"app":"load"}},"spec":{"nodeName":"bench-node","containers":[{"name":"c","image":"busybox:1",' ..
    '"resources":{"requests":{"cpu":"10m","memory":"8Mi"}}}]}}'
  return wrk.format("POST", "/api/v1/namespaces/bench/pods",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
function response(status, headers, body)
  if status == 201 then created = created + 1 else failed = failed + 1 end
  if created + failed >= per_thread then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local total_created, total_failed = 0, 0
  for _, t in ipairs(threads) do
    total_created = total_created + t:get("created")
    total_failed = total_failed + t:get("failed")
  end
  io.write(string.format("RESULT created=%d failed=%d duration_us=%d p50_us=%d p99_us=%d\n",
    total_created, total_failed, summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def _watchers(url: str, token: str, ca_pem: str, count: int, revision: str, stop_after: float, total: int,
              out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Run in its own process: ``count`` watch streams plus a probe writer; report lags."""
    import ssl

    async def main() -> dict[str, object]:
        context = ssl.create_default_context(cadata=ca_pem)
        headers = {"Authorization": f"Bearer {token}"}
        acked: dict[bytes, float] = {}
        lags: list[float] = []
        events = [0] * count
        load_seen: list[float] = []
        load_count = [0]
        seen: list[set[bytes]] = [set() for _ in range(count)]
        limits = httpx.Limits(max_connections=count + 4)
        async with httpx.AsyncClient(base_url=url, verify=context, headers=headers, limits=limits,
                                     timeout=httpx.Timeout(30, read=None)) as http:
            started = asyncio.Event()
            ready = [0]

            async def watch(index: int) -> None:
                # A bare HTTP/1.1 stream over asyncio's SSL transport: cheaper per chunk than a full
                # client, so that 100 watchers in one process keep up (the load must not be the limit).
                host, port = url.removeprefix("https://").rsplit(":", 1)
                reader, writer = await asyncio.open_connection(host, int(port), ssl=context,
                                                               limit=1 << 20)
                writer.write(f"GET /api/v1/watch/namespaces/{NAMESPACE}/pods?resourceVersion={revision} "
                             f"HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head[:100]
                ready[0] += 1
                if ready[0] == count:
                    started.set()
                tail = buffer = b""
                try:
                    while True:
                        chunk = await reader.read(1 << 18)
                        if not chunk:
                            return
                        now = time.monotonic()
                        events[index] += chunk.count(b'{"type":')
                        if b"probe-" in chunk or b"probe-" in tail + chunk[:32]:
                            for name in re.findall(rb'"name":"(probe-\d+)"', tail + chunk):
                                if name in acked and name not in seen[index]:
                                    seen[index].add(name)
                                    lags.append(max(0.0, now - acked[name]))
                        if index == 0:  # the reference watcher splits lines exactly
                            buffer += chunk
                            *lines, buffer = buffer.split(b"\n")
                            loads = sum(1 for line in lines if line.startswith(b'{"type":"ADDED"')
                                        and b'"name":"load-' in line)
                            if loads:
                                if not load_seen:
                                    load_seen.append(now)
                                load_count[0] += loads
                                if load_count[0] >= total and len(load_seen) == 1:
                                    load_seen.append(now)
                                    out.put(("load", load_seen[0], now))
                        tail = chunk[-64:]
                finally:
                    writer.close()

            async def probe() -> None:
                await started.wait()
                out.put("ready")
                deadline = time.monotonic() + stop_after
                i = 0
                while time.monotonic() < deadline and load_count[0] < total:
                    i += 1
                    name = f"probe-{i}"
                    body = {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
                            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
                    response = await http.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=body)
                    if response.status_code == 201:
                        acked[name.encode()] = time.monotonic()
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)

            tasks = [asyncio.create_task(watch(i)) for i in range(count)]
            await probe()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return {"lags": lags, "events": sum(events), "probes": len(acked)}

    out.put(asyncio.run(main()))


def run(total: int, connections: int, watchers: int) -> dict[str, object]:
    with running_server() as server:
        with server.http() as http:
            http.post("/api/v1/namespaces", json={"apiVersion": "shoal/v1", "kind": "Namespace",
                                                 "metadata": {"name": NAMESPACE}}).raise_for_status()
            revision = http.get(f"/api/v1/namespaces/{NAMESPACE}/pods").json()["metadata"]["resourceVersion"]
        return _load(server, total, connections, watchers, revision)


def _load(server: BenchServer, total: int, connections: int, watchers: int, revision: str) -> dict[str, object]:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    expected_seconds = max(10.0, total / 500)
    watcher_proc = multiprocessing.Process(target=_watchers, args=(server.url, server.token, server.ca_pem,
                                                                  watchers, revision, expected_seconds, total,
                                                                  queue))
    watcher_proc.start()
    assert queue.get(timeout=60) == "ready"
    threads = 2
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    env = {"SHOAL_PER_THREAD": str(total // threads), "SHOAL_TOKEN": server.token, "PATH": "/usr/bin:/bin"}
    wrk = subprocess.Popen(["wrk", "-t", str(threads), "-c", str(connections), "-d", "150s", "--timeout", "10s",
                            "-s", script.name, server.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env)
    try:
        message = queue.get(timeout=160)  # the first watcher saw every load pod: the run is over
        assert message[0] == "load", message
        _, first_seen, last_seen = message
        wrk.send_signal(signal.SIGINT)  # wrk stops and prints its summary
        stdout, stderr = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
        Path(script.name).unlink()
    match = re.search(r"RESULT created=(\d+) failed=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+)", stdout)
    if not match:
        raise RuntimeError(f"wrk failed:\n{stdout}\n{stderr}")
    created, failed, _, p50_us, p99_us = (int(g) for g in match.groups())
    watched = queue.get(timeout=expected_seconds + 120)
    watcher_proc.join(timeout=30)
    assert isinstance(watched, dict)
    lags = [lag * 1000 for lag in watched["lags"]]  # type: ignore[union-attr]
    return {
        "creates": created, "failed": failed, "connections": connections, "watchers": watchers,
        "creates_per_s": round(total / (last_seen - first_seen), 1),
        "create_p50_ms": round(p50_us / 1000, 2), "create_p99_ms": round(p99_us / 1000, 2),
        "watch_lag_p50_ms": round(percentile(lags, 50), 2), "watch_lag_p99_ms": round(percentile(lags, 99), 2),
        "watch_lag_samples": len(lags), "watch_events_delivered": watched["events"],
        "targets": {"creates_per_s": ">= 1000", "create_p99_ms": "<= 150", "watch_lag_p99_ms": "<= 100"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--watchers", type=int, default=100)
    args = parser.parse_args()
    write_json(args.json, run(args.pods, args.connections, args.watchers))


if __name__ == "__main__":
    main()
