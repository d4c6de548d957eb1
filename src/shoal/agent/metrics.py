"""The agent's metrics: cAdvisor-named container series and node series on ``/metrics``, and a
compact usage sample pushed to the server every 10 s for ``shoal top``.

``NodeMetrics.read`` takes one ``Reading`` of the host (/proc/stat, /proc/meminfo, load, the data
dir's filesystem) and of every running container of this node's pods (their cgroups, through
``runtime.oci.cgroups``); ``families`` (pure) turns a reading into Prometheus metric families and
``usage_sample`` (pure) turns two readings into the pushed sample (CPU as a rate between them).
prometheus_client is imported only by ``serve_metrics``, so an agent without ``--metrics-bind``
never loads it. It must not decide anything about pods: it only reads and reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from shoal.client import AsyncClient, ClientError, calls
from shoal.runtime.oci import cgroups
from shoal.runtime.oci.spec import cgroups_path

__all__ = ["EXAMPLE_METRICS_BIND", "PUSH_SECONDS", "ContainerReading", "Family", "MetricsServer", "NodeMetrics",
           "NodeReading", "Reading", "families", "parse_bind", "parse_meminfo", "parse_proc_stat", "serve_metrics",
           "usage_sample"]

log = logging.getLogger("shoal.agent.metrics")
EXAMPLE_METRICS_BIND = "127.0.0.1:10249"  # the conventional port; serving is opt-in
PUSH_SECONDS = 10.0
CONTAINER_LABELS = ("namespace", "pod", "container", "image", "name", "id")
_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_BUSY_MODES = frozenset(_CPU_MODES) - {"idle", "iowait"}
PodSource = Callable[[], Iterable[Mapping[str, Any]]]


# ----- readings (plain data) -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ContainerReading:
    namespace: str
    pod: str
    pod_uid: str
    container: str
    image: str
    container_id: str
    cgroup: str
    cpu_ns: int
    memory_usage: int
    working_set: int
    rss: int
    memory_limit: int | None
    cpu_quota_us: int | None
    cpu_period_us: int
    processes: int
    threads: int

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.namespace, self.pod, self.container, self.image, self.container_id, self.cgroup)


@dataclass(frozen=True, slots=True)
class NodeReading:
    cpu_seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # cpu index → mode → seconds
    memory_total: int = 0
    memory_available: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fs_path: str = ""
    fs_size: int = 0
    fs_avail: int = 0
    pods_running: int = 0

    @property
    def busy_seconds(self) -> float:
        return sum(v for modes in self.cpu_seconds.values() for m, v in modes.items() if m in _BUSY_MODES)

    @property
    def memory_working_set(self) -> int:
        return max(0, self.memory_total - self.memory_available)


@dataclass(frozen=True, slots=True)
class Reading:
    wall: float  # unix time
    monotonic: float
    node: NodeReading
    containers: tuple[ContainerReading, ...] = ()
    stats_reads: int = 0  # cumulative cgroup reads and their time, for the runtime latency series
    stats_seconds: float = 0.0


def parse_proc_stat(text: str, hz: int = 100) -> dict[str, dict[str, float]]:
    """Per-CPU seconds by mode from /proc/stat (``cpu0 user nice system idle ...`` in USER_HZ ticks)."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        out[name[3:]] = {mode: int(v) / hz for mode, v in zip(_CPU_MODES, values, strict=False)}
    return out


def parse_meminfo(text: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("MemTotal", "MemAvailable") and parts and parts[0].isdigit():
            found[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return found.get("MemTotal", 0), found.get("MemAvailable", 0)


# ----- exposition (pure) ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str  # "counter" | "gauge"
    help: str
    labels: tuple[str, ...] = ()
    samples: Sequence[tuple[tuple[str, ...], float]] = ()


def _container_families(reading: Reading) -> list[Family]:
    def fam(name: str, kind: str, text: str, value: Callable[[ContainerReading], float | None],
            extra: tuple[str, ...] = ()) -> Family:
        samples = [((*c.labels, *extra), v) for c in reading.containers if (v := value(c)) is not None]
        return Family(name, kind, text, (*CONTAINER_LABELS, *(("cpu",) if extra else ())), samples)

    return [
        fam("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.",
            lambda c: c.cpu_ns / 1e9, ("total",)),
        fam("container_memory_usage_bytes", "gauge", "Current memory usage in bytes, including all memory "
            "regardless of when it was accessed.", lambda c: c.memory_usage),
        fam("container_memory_working_set_bytes", "gauge", "Current working set in bytes.", lambda c: c.working_set),
        fam("container_memory_rss", "gauge", "Size of RSS in bytes.", lambda c: c.rss),
        fam("container_spec_memory_limit_bytes", "gauge", "Memory limit for the container (0: none).",
            lambda c: c.memory_limit or 0),
        fam("container_spec_cpu_quota", "gauge", "CPU quota of the container (only where one is set).",
            lambda c: c.cpu_quota_us),
        fam("container_spec_cpu_period", "gauge", "CPU period of the container.", lambda c: c.cpu_period_us),
        fam("container_processes", "gauge", "Number of processes running inside the container.",
            lambda c: c.processes),
        fam("container_threads", "gauge", "Number of threads running inside the container.", lambda c: c.threads),
        fam("container_last_seen", "gauge", "Last time a container was seen by the exporter.",
            lambda c: reading.wall),
    ]


def families(reading: Reading) -> list[Family]:
    """Every metric family of one reading: container series (cAdvisor names) then node series."""
    node = reading.node
    cpu = [((idx, mode), secs) for idx, modes in sorted(node.cpu_seconds.items(), key=lambda kv: int(kv[0]))
           for mode, secs in modes.items()]
    fs = (node.fs_path,) if node.fs_path else None
    out = _container_families(reading)
    out += [
        Family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", ("cpu", "mode"), cpu),
        Family("machine_cpu_cores", "gauge", "Number of logical CPU cores.", (), [((), len(node.cpu_seconds))]),
        Family("node_memory_MemTotal_bytes", "gauge", "Memory information field MemTotal_bytes.", (),
               [((), node.memory_total)]),
        Family("node_memory_MemAvailable_bytes", "gauge", "Memory information field MemAvailable_bytes.", (),
               [((), node.memory_available)]),
        *(Family(f"node_load{n}", "gauge", f"{n}m load average.", (), [((), value)])
          for n, value in zip((1, 5, 15), node.load, strict=True)),
        Family("node_filesystem_size_bytes", "gauge", "Filesystem size in bytes (the agent's data dir).",
               ("mountpoint",), [(fs, node.fs_size)] if fs else []),
        Family("node_filesystem_avail_bytes", "gauge", "Filesystem space available to non-root users in bytes.",
               ("mountpoint",), [(fs, node.fs_avail)] if fs else []),
        Family("shoal_node_pods_running", "gauge", "Pods of this node in phase Running.", (),
               [((), node.pods_running)]),
        Family("shoal_node_containers_running", "gauge", "Running containers of this node's pods.", (),
               [((), len(reading.containers))]),
        Family("shoal_runtime_stats_reads_total", "counter", "Container cgroup stats reads.", (),
               [((), reading.stats_reads)]),
        Family("shoal_runtime_stats_read_seconds_total", "counter", "Time spent reading container cgroup stats.",
               (), [((), reading.stats_seconds)]),
    ]
    return out


# ----- the pushed usage sample (pure) --------------------------------------------------------------

def usage_sample(previous: Reading, current: Reading) -> dict[str, Any]:
    """The body of ``POST /api/v1/nodes/NAME/metrics``: node and per-container CPU (nanocores, the rate
    between the two readings) and memory working set (bytes, from ``current``). Containers missing
    from ``previous``, or whose counter went back (restarted), wait for the next sample."""
    elapsed = current.monotonic - previous.monotonic
    if elapsed <= 0:
        raise ValueError("usage_sample needs two readings in time order")
    node_cpu = max(0.0, current.node.busy_seconds - previous.node.busy_seconds) / elapsed
    before = {c.container_id: c.cpu_ns for c in previous.containers}
    pods: dict[str, dict[str, Any]] = {}
    for c in current.containers:
        old = before.get(c.container_id)
        if old is None or c.cpu_ns < old:
            continue
        pod = pods.setdefault(c.pod_uid, {"namespace": c.namespace, "name": c.pod, "uid": c.pod_uid,
                                          "containers": []})
        pod["containers"].append({"name": c.container, "cpuNanoCores": round((c.cpu_ns - old) / elapsed),
                                  "memoryWorkingSetBytes": c.working_set})
    stamp = dt.datetime.fromtimestamp(current.wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"timestamp": stamp, "windowSeconds": round(elapsed, 3),
            "node": {"cpuNanoCores": round(node_cpu * 1e9), "memoryWorkingSetBytes": current.node.memory_working_set},
            "pods": list(pods.values())}


# ----- reading the host ----------------------------------------------------------------------------

def _running_containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(container name, image, runtime id) of the pod's containers its status says are Running."""
    images = {c.get("name"): c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []}
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("state") == "Running" and status.get("containerId"):
            name = str(status.get("name") or "")
            yield name, str(status.get("image") or images.get(name) or ""), str(status["containerId"])


class NodeMetrics:
    """Reads this node and its pods' containers; serves ``/metrics`` families and pushes usage samples.

    ``pods`` returns this node's pods as dicts with their current ``status`` (it is called from the
    metrics HTTP thread too, so it must iterate a snapshot, e.g. ``list(agent.workers.values())``).
    """

    def __init__(self, node_name: str, pods: PodSource, cgroup_parent: str, data_dir: Path,
                 *, interval: float = PUSH_SECONDS, cgroup_root: Path = cgroups.CGROUP_ROOT,
                 proc: Path = Path("/proc")) -> None:
        self.node_name = node_name
        self.pods = pods
        self.cgroup_parent = cgroup_parent
        self.data_dir = data_dir
        self.interval = interval
        self.cgroup_root = cgroup_root
        self.proc = proc
        self.pushed = 0  # samples the server accepted
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._stats_reads = 0
        self._stats_seconds = 0.0

    def _snapshot(self) -> list[Mapping[str, Any]]:
        for _ in range(3):
            with contextlib.suppress(RuntimeError):  # "changed size during iteration" from another thread
                return list(self.pods())
        return []

    def _container(self, pod: Mapping[str, Any], name: str, image: str, cid: str) -> ContainerReading | None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        path = cgroups_path(self.cgroup_parent, uid, cid)
        began = time.perf_counter()
        try:
            stats = cgroups.read_stats(path, self.cgroup_root)
            detail = cgroups.read_detail(path, self.cgroup_root)
        except (OSError, ValueError):
            return None
        finally:
            self._stats_reads += 1
            self._stats_seconds += time.perf_counter() - began
        if stats.cpu_usage_ns == 0 and stats.memory_usage_bytes == 0:
            return None  # the cgroup is gone (the container just exited)
        return ContainerReading(
            namespace=str(meta.get("namespace") or "default"), pod=str(meta.get("name") or ""), pod_uid=uid,
            container=name, image=image, container_id=cid, cgroup=path, cpu_ns=stats.cpu_usage_ns,
            memory_usage=stats.memory_usage_bytes, working_set=stats.memory_working_set_bytes,
            rss=detail.rss_bytes, memory_limit=stats.memory_limit_bytes, cpu_quota_us=detail.cpu_quota_us,
            cpu_period_us=detail.cpu_period_us, processes=detail.processes, threads=stats.pids_current)

    def _node(self, pods: list[Mapping[str, Any]]) -> NodeReading:
        def text(name: str) -> str:
            try:
                return (self.proc / name).read_text()
            except OSError:
                return ""

        total, available = parse_meminfo(text("meminfo"))
        loads = [float(x) for x in text("loadavg").split()[:3]] + [0.0, 0.0, 0.0]
        try:
            fs = os.statvfs(self.data_dir)
            size, avail = fs.f_blocks * fs.f_frsize, fs.f_bavail * fs.f_frsize
        except OSError:
            size = avail = 0
        running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
        return NodeReading(cpu_seconds=parse_proc_stat(text("stat"), self._hz), memory_total=total,
                           memory_available=available, load=(loads[0], loads[1], loads[2]),
                           fs_path=str(self.data_dir), fs_size=size, fs_avail=avail, pods_running=running)

    def read(self, pods: list[Mapping[str, Any]] | None = None) -> Reading:
        """One reading of the node and its running containers (blocking file reads: run it off the loop)."""
        pods = self._snapshot() if pods is None else pods
        found = [self._container(pod, *c) for pod in pods for c in _running_containers(pod)]
        return Reading(wall=time.time(), monotonic=time.monotonic(), node=self._node(pods),
                       containers=tuple(c for c in found if c is not None), stats_reads=self._stats_reads,
                       stats_seconds=self._stats_seconds)

    def collect(self) -> list[Family]:
        return families(self.read())

    async def push_once(self, client: AsyncClient, previous: Reading) -> Reading:
        """Read again and push the usage since ``previous``; returns the new reading."""
        current = await asyncio.to_thread(self.read, self._snapshot())
        body = usage_sample(previous, current)
        await client.run(calls.Call("POST", f"/api/v1/nodes/{quote(self.node_name, safe='')}/metrics",
                                    _accepted, body=body))
        self.pushed += 1
        return current

    async def push_loop(self, client: AsyncClient, stop: asyncio.Event) -> None:
        """Push a usage sample every ``interval`` seconds until ``stop``; a failed push is logged and the
        next one covers the whole time since the last reading. An interval of 0 pushes nothing."""
        if self.interval <= 0:
            return
        previous = await asyncio.to_thread(self.read, self._snapshot())
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return
            try:
                previous = await self.push_once(client, previous)
            except ClientError as exc:
                log.info("metrics push: %s (next try in %gs)", exc, self.interval)


def _accepted(response: httpx.Response) -> None:
    calls.decode_body(response)


# ----- the HTTP endpoint ---------------------------------------------------------------------------

def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:10249``, ``:10249`` = all addresses) as (host, port); ValueError naming
    --metrics-bind otherwise."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--metrics-bind {bind!r} is not HOST:PORT; use e.g. {EXAMPLE_METRICS_BIND} "
                         '(or "" to serve no metrics)')
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    host: str
    port: int
    _server: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(bind: str, collector: NodeMetrics) -> MetricsServer | None:
    """Serve ``collector``'s families in the Prometheus text format on ``bind`` (a daemon thread);
    None when ``bind`` is "". OSError when the address is taken."""
    if not bind:
        return None
    host, port = parse_bind(bind)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class _Adapter(Collector):
        def collect(self) -> Iterator[Any]:
            for fam in collector.collect():
                cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
                metric = cls(fam.name, fam.help, labels=list(fam.labels))
                for values, value in fam.samples:
                    metric.add_metric(list(values), value)
                yield metric

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Adapter())
    server, _thread = start_http_server(port, host, registry)
    bound_host, bound_port = server.server_address[:2]
    log.info("serving metrics on http://%s:%d/metrics", bound_host, bound_port)
    return MetricsServer(str(bound_host), int(bound_port), server)
