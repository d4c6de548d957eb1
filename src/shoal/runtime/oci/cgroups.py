"""Reads and tidies the cgroups runc creates for containers, on cgroup v1 (incl. hybrid) and v2.

Owns host facts the spec builder needs (cgroup version, AppArmor, rlimits, io weight support),
per-container usage (cpu, memory, working set, pids) and the extra figures the metrics endpoint
shows (rss, cpu quota/period, processes), OOM-kill detection and removal of empty container and
pod cgroup dirs. It must not write limits: runc applies config.json's resources.
"""

from __future__ import annotations

import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path

from shoal.runtime.oci.spec import HostFacts
from shoal.runtime.protocol import Stats

__all__ = ["CgroupDetail", "container_dirs", "host_facts", "oom_killed", "read_detail", "read_stats", "remove_dirs"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED = 1 << 62


def cgroup_version(root: Path = CGROUP_ROOT) -> int:
    return 2 if (root / "cgroup.controllers").exists() else 1


def host_facts(root: Path = CGROUP_ROOT) -> HostFacts:
    version = cgroup_version(root)
    if version == 2:
        io_weight = "io" in (root / "cgroup.controllers").read_text().split()
    else:
        io_weight = any((root / "blkio" / f).exists() for f in ("blkio.weight", "blkio.bfq.weight"))
    try:
        apparmor = Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        apparmor = False
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return HostFacts(
        machine=platform.machine(),
        cgroup_version=version,
        apparmor_enabled=apparmor,
        nofile_hard=hard if hard != resource.RLIM_INFINITY else 1 << 20,
        io_weight_supported=io_weight,
    )


def _hierarchies(root: Path) -> list[Path]:
    if cgroup_version(root) == 2:
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists())


def container_dirs(cgroups_path: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Every existing cgroup dir of ``cgroups_path`` (one per v1 hierarchy, or the v2 one)."""
    rel = cgroups_path.strip("/")
    return [h / rel for h in _hierarchies(root) if (h / rel).is_dir()]


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    return int(text)


def _keyed(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def read_stats(cgroups_path: str, root: Path = CGROUP_ROOT) -> Stats:
    rel = cgroups_path.strip("/")
    if cgroup_version(root) == 2:
        d = root / rel
        cpu_ns = _keyed(d / "cpu.stat").get("usage_usec", 0) * 1000
        usage = _read_int(d / "memory.current") or 0
        inactive = _keyed(d / "memory.stat").get("inactive_file", 0)
        limit = _read_int(d / "memory.max")
        pids = _read_int(d / "pids.current") or 0
    else:
        cpu_ns = _read_int(root / "cpuacct" / rel / "cpuacct.usage") or 0
        mem = root / "memory" / rel
        usage = _read_int(mem / "memory.usage_in_bytes") or 0
        inactive = _keyed(mem / "memory.stat").get("total_inactive_file", 0)
        limit = _read_int(mem / "memory.limit_in_bytes")
        pids = _read_int(root / "pids" / rel / "pids.current") or 0
    if limit is not None and limit >= _UNLIMITED:
        limit = None
    return Stats(
        cpu_usage_ns=cpu_ns,
        memory_usage_bytes=usage,
        memory_working_set_bytes=max(0, usage - inactive),
        memory_limit_bytes=limit,
        pids_current=pids,
    )


@dataclass(frozen=True, slots=True)
class CgroupDetail:
    """What ``read_stats`` leaves out: resident anonymous memory, the CFS quota (None: no limit) and
    period in microseconds, and the number of processes (not threads) in the cgroup."""

    rss_bytes: int
    cpu_quota_us: int | None
    cpu_period_us: int
    processes: int


def _count_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return 0


def read_detail(cgroups_path: str, root: Path = CGROUP_ROOT) -> CgroupDetail:
    """Rss, CPU quota/period and process count of a container cgroup (zeros for a vanished one)."""
    rel = cgroups_path.strip("/")
    if cgroup_version(root) == 2:
        d = root / rel
        rss = _keyed(d / "memory.stat").get("anon", 0)
        try:
            quota_text, _, period_text = (d / "cpu.max").read_text().strip().partition(" ")
        except OSError:
            quota_text, period_text = "max", ""
        quota = None if quota_text == "max" or not quota_text.isdigit() else int(quota_text)
        period = int(period_text) if period_text.isdigit() else 100_000
        procs = _count_lines(d / "cgroup.procs")
    else:
        rss = _keyed(root / "memory" / rel / "memory.stat").get("total_rss", 0)
        raw_quota = _read_int(root / "cpu" / rel / "cpu.cfs_quota_us")
        quota = raw_quota if raw_quota is not None and raw_quota > 0 else None
        period = _read_int(root / "cpu" / rel / "cpu.cfs_period_us") or 100_000
        procs = _count_lines(root / "pids" / rel / "cgroup.procs")
    return CgroupDetail(rss_bytes=rss, cpu_quota_us=quota, cpu_period_us=period, processes=procs)


def oom_killed(cgroups_path: str, root: Path = CGROUP_ROOT) -> bool:
    """Whether the kernel's OOM killer killed a process in this container's memory cgroup."""
    rel = cgroups_path.strip("/")
    if cgroup_version(root) == 2:
        return _keyed(root / rel / "memory.events").get("oom_kill", 0) > 0
    return _keyed(root / "memory" / rel / "memory.oom_control").get("oom_kill", 0) > 0


def remove_dirs(cgroups_path: str, levels: int = 2, root: Path = CGROUP_ROOT) -> None:
    """Remove the container's cgroup dirs and up to ``levels - 1`` parents that became empty."""
    rel = Path(cgroups_path.strip("/"))
    for hierarchy in _hierarchies(root):
        d = hierarchy / rel
        for _ in range(levels):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                break
            d = d.parent
