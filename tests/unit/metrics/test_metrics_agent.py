"""The agent's metrics as a user sees them: /proc parsing, cgroup figures, the pushed usage sample
(CPU as a rate, restarted containers held back) and the exposition names and labels Prometheus gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from shoal.agent.metrics import (
    ContainerReading,
    NodeMetrics,
    NodeReading,
    Reading,
    families,
    parse_bind,
    parse_meminfo,
    parse_proc_stat,
    usage_sample,
)
from shoal.runtime.oci.cgroups import read_detail

PROC_STAT = """cpu  300 0 100 1000 20 0 5 0 0 0
cpu0 200 0 50 500 10 0 5 0 0 0
cpu1 100 0 50 500 10 0 0 0 0 0
intr 12345
ctxt 999
"""


def container(cid: str = "uid1-app", cpu_ns: int = 0, working_set: int = 4096, pod: str = "web") -> ContainerReading:
    return ContainerReading(namespace="default", pod=pod, pod_uid="uid1", container="app", image="busybox:1",
                            container_id=cid, cgroup=f"/shoal/uid1/{cid}", cpu_ns=cpu_ns, memory_usage=working_set * 2,
                            working_set=working_set, rss=1024, memory_limit=None, cpu_quota_us=None,
                            cpu_period_us=100_000, processes=1, threads=2)


def reading(at: float, busy: float, *containers: ContainerReading) -> Reading:
    node = NodeReading(cpu_seconds={"0": {"user": busy, "idle": 100.0}}, memory_total=8 << 30,
                       memory_available=6 << 30)
    return Reading(wall=1_700_000_000 + at, monotonic=at, node=node, containers=containers)


def test_proc_stat_is_per_cpu_seconds_by_mode() -> None:
    cpus = parse_proc_stat(PROC_STAT, hz=100)
    assert set(cpus) == {"0", "1"}
    assert cpus["0"]["user"] == 2.0 and cpus["0"]["softirq"] == 0.05 and cpus["1"]["idle"] == 5.0
    assert NodeReading(cpu_seconds=cpus).busy_seconds == pytest.approx(4.05)  # idle and iowait are not busy


def test_meminfo_total_and_available_in_bytes() -> None:
    text = "MemTotal:       16000 kB\nMemFree:  1 kB\nMemAvailable:    4000 kB\n"
    assert parse_meminfo(text) == (16000 * 1024, 4000 * 1024)
    assert parse_meminfo("") == (0, 0)


def test_usage_sample_rates_cpu_between_readings_and_reports_working_set() -> None:
    before = reading(10.0, 5.0, container(cpu_ns=1_000_000_000))
    after = reading(20.0, 7.5, container(cpu_ns=1_500_000_000, working_set=64 << 20))
    sample = usage_sample(before, after)
    assert sample["windowSeconds"] == 10.0
    assert sample["node"] == {"cpuNanoCores": 250_000_000, "memoryWorkingSetBytes": 2 << 30}
    assert sample["pods"] == [{"namespace": "default", "name": "web", "uid": "uid1", "containers": [
        {"name": "app", "cpuNanoCores": 50_000_000, "memoryWorkingSetBytes": 64 << 20}]}]
    assert sample["timestamp"].endswith("Z")


def test_usage_sample_holds_back_new_and_restarted_containers() -> None:
    before = reading(0.0, 1.0, container(cid="a", cpu_ns=5_000))
    after = reading(10.0, 1.0, container(cid="a", cpu_ns=10), container(cid="b", cpu_ns=99))
    assert usage_sample(before, after)["pods"] == []
    with pytest.raises(ValueError, match="time order"):
        usage_sample(after, before)


def _exposition(read: Reading) -> str:
    class Adapter(Collector):
        def collect(self) -> Any:
            for fam in families(read):
                cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
                metric = cls(fam.name, fam.help, labels=list(fam.labels))
                for values, value in fam.samples:
                    metric.add_metric(list(values), value)
                yield metric

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Adapter())
    return generate_latest(registry).decode()


def test_exposition_uses_cadvisor_names_and_labels() -> None:
    text = _exposition(reading(1.0, 1.0, container(cpu_ns=2_500_000_000, working_set=8192)))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    labels = {"namespace": "default", "pod": "web", "container": "app", "image": "busybox:1", "name": "uid1-app",
              "id": "/shoal/uid1/uid1-app"}
    key = tuple(sorted(labels.items()))
    assert samples[("container_memory_working_set_bytes", key)] == 8192
    assert samples[("container_cpu_usage_seconds_total", tuple(sorted({**labels, "cpu": "total"}.items())))] == 2.5
    names = {name for name, _ in samples}
    for name in ("container_memory_usage_bytes", "container_memory_rss", "container_spec_memory_limit_bytes",
                 "container_spec_cpu_period", "container_processes", "container_threads", "container_last_seen",
                 "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes", "node_load1",
                 "shoal_node_pods_running"):
        assert name in names, name
    assert samples[("node_cpu_seconds_total", (("cpu", "0"), ("mode", "user")))] == 1.0
    assert "container_spec_cpu_quota" not in names  # no quota set: no series, as cAdvisor does


def test_bind_values() -> None:
    assert parse_bind("127.0.0.1:10249") == ("127.0.0.1", 10249)
    assert parse_bind(":9100") == ("0.0.0.0", 9100)
    assert parse_bind("[::1]:9100") == ("::1", 9100)
    for bad in ("10249", "host:", "host:99999"):
        with pytest.raises(ValueError, match="--metrics-bind"):
            parse_bind(bad)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_detail_v1_and_v2(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    rel = "shoal/uid1/c1"
    _write(v1 / "memory" / rel / "memory.stat", "cache 10\nrss 5\ntotal_rss 3000\n")
    _write(v1 / "cpu" / rel / "cpu.cfs_quota_us", "50000\n")
    _write(v1 / "cpu" / rel / "cpu.cfs_period_us", "100000\n")
    _write(v1 / "pids" / rel / "cgroup.procs", "12\n13\n")
    detail = read_detail(rel, v1)
    assert (detail.rss_bytes, detail.cpu_quota_us, detail.cpu_period_us, detail.processes) == (3000, 50000, 100000, 2)
    v2 = tmp_path / "v2"
    _write(v2 / "cgroup.controllers", "cpu memory pids\n")
    _write(v2 / rel / "memory.stat", "anon 4096\nfile 10\n")
    _write(v2 / rel / "cpu.max", "max 100000\n")
    _write(v2 / rel / "cgroup.procs", "7\n")
    detail = read_detail(rel, v2)
    assert (detail.rss_bytes, detail.cpu_quota_us, detail.cpu_period_us, detail.processes) == (4096, None, 100000, 1)


def test_node_metrics_reads_only_running_containers(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "cpu memory pids\n")
    cg = root / "shoal" / "uid1" / "uid1-app"
    _write(cg / "cpu.stat", "usage_usec 2000\n")
    _write(cg / "memory.current", "8192\n")
    _write(cg / "memory.stat", "inactive_file 4096\nanon 2048\n")
    _write(cg / "memory.max", "max\n")
    _write(cg / "pids.current", "3\n")
    proc = tmp_path / "proc"
    _write(proc / "stat", PROC_STAT)
    _write(proc / "meminfo", "MemTotal: 100 kB\nMemAvailable: 50 kB\n")
    _write(proc / "loadavg", "0.5 0.25 0.1 1/100 42\n")
    pod = {"metadata": {"name": "web", "namespace": "plant-a", "uid": "uid1"},
           "spec": {"containers": [{"name": "app", "image": "busybox:1"}, {"name": "side", "image": "x"}]},
           "status": {"phase": "Running", "containerStatuses": [
               {"name": "app", "state": "Running", "containerId": "uid1-app"},
               {"name": "side", "state": "Waiting"}]}}
    read = NodeMetrics("gw-1", lambda: [pod], "/shoal", tmp_path, cgroup_root=root, proc=proc).read()
    assert [(c.namespace, c.pod, c.container, c.image, c.cpu_ns, c.working_set, c.threads) for c in read.containers] \
        == [("plant-a", "web", "app", "busybox:1", 2_000_000, 4096, 3)]
    assert read.node.memory_working_set == 50 * 1024 and read.node.load == (0.5, 0.25, 0.1)
    assert read.node.pods_running == 1 and read.node.fs_size > 0 and read.stats_reads == 1
