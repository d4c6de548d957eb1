"""Builds an OCI runtime config.json (as a dict) from a ContainerSpec, with shoal's secure defaults.

Defaults follow Docker: private pid/net/mnt/uts/ipc namespaces (user on request), Docker's 14
capabilities (never ambient), its seccomp profile, masked and read-only /proc paths,
no-new-privileges, nofile 1024, a pids limit of 1024, and cgroup limits from the spec. Facts
about the host arrive as ``HostFacts``; this module is pure and must not read or change the host.
An AppArmor profile asked for on a kernel without AppArmor is refused, never run unconfined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shoal.runtime.oci.seccomp import UnsupportedArchitecture, default_profile
from shoal.runtime.protocol import ContainerSpec, SeccompMode, SpecError

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PIDS_LIMIT",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "HostFacts",
    "build_config",
    "cgroups_path",
    "effective_capabilities",
]

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
# Linux capability numbers 0..40, in order.
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
DEFAULT_PIDS_LIMIT = 1024
DEFAULT_NOFILE = 1024
_CPU_PERIOD_US = 100_000
_MIN_CPU_QUOTA_US = 1_000
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ID_RE = re.compile(r"^[A-Za-z0-9][\w.+-]{0,127}$")
_USERNS_SIZE = 65536
# Character devices every container may use (null, zero, full, tty, random, urandom, ptmx, pts).
_ALLOWED_DEVICES: tuple[tuple[int, int | None], ...] = (
    (1, 3),
    (1, 5),
    (1, 7),
    (5, 0),
    (1, 8),
    (1, 9),
    (5, 2),
    (136, None),
)


@dataclass(frozen=True, slots=True)
class HostFacts:
    machine: str = "x86_64"
    cgroup_version: int = 1
    apparmor_enabled: bool = False
    nofile_hard: int = 1_048_576
    io_weight_supported: bool = False
    userns_base: int = 100_000


def cgroups_path(parent: str, pod_uid: str, container_id: str) -> str:
    """The container's cgroup, ``<parent>/<pod-uid>/<container>`` (same path on cgroup v1 and v2)."""
    return f"/{parent.strip('/')}/{pod_uid}/{container_id}"


def _cap_name(raw: str, field_path: str) -> str:
    name = raw.strip().upper()
    if name == "ALL":
        return name
    name = name if name.startswith("CAP_") else f"CAP_{name}"
    if name not in ALL_CAPABILITIES:
        raise SpecError(field_path, f"unknown capability {raw!r}; use a Linux capability name such as NET_ADMIN")
    return name


def effective_capabilities(spec: ContainerSpec) -> list[str]:
    """Docker's defaults (or all, when privileged), plus ``cap_add``, minus ``cap_drop``."""
    sec = spec.security
    if sec.privileged:
        return list(ALL_CAPABILITIES)
    adds = [_cap_name(c, f"security.cap_add[{i}]") for i, c in enumerate(sec.cap_add)]
    drops = [_cap_name(c, f"security.cap_drop[{i}]") for i, c in enumerate(sec.cap_drop)]
    caps = set(ALL_CAPABILITIES if "ALL" in adds else DEFAULT_CAPABILITIES) | {c for c in adds if c != "ALL"}
    caps = set() if "ALL" in drops else caps - set(drops)
    return [c for c in ALL_CAPABILITIES if c in caps]


def _validate(spec: ContainerSpec) -> None:
    if not _ID_RE.match(spec.id):
        raise SpecError("id", f"{spec.id!r} is not a valid container id; use letters, digits, '_', '.', '+', '-'")
    if not spec.argv:
        raise SpecError("command", "nothing to run; set command or args")
    if not spec.working_dir.startswith("/"):
        raise SpecError("working_dir", f"{spec.working_dir!r} must be an absolute path")
    if bool(spec.lower_dirs) == bool(spec.rootfs_path):
        raise SpecError("lower_dirs", "give either lower_dirs (image layers) or rootfs_path, exactly one")
    for i, m in enumerate(spec.mounts):
        if not m.destination.startswith("/"):
            raise SpecError(f"mounts[{i}].destination", f"{m.destination!r} must be an absolute path")
    for i, (key, _) in enumerate(spec.env):
        if not key or "=" in key:
            raise SpecError(f"env[{i}]", f"{key!r} is not a valid variable name")
    res = spec.resources
    for name in ("cpu_request_millis", "cpu_limit_millis", "memory_limit_bytes", "pids_limit"):
        value = getattr(res, name)
        if value is not None and value <= 0:
            raise SpecError(f"resources.{name}", f"must be positive, got {value}")
    if res.io_weight is not None and not 10 <= res.io_weight <= 1000:
        raise SpecError("resources.io_weight", f"must be within 10..1000, got {res.io_weight}")


def _resources(spec: ContainerSpec, host: HostFacts) -> dict[str, Any]:
    res = spec.resources
    request = res.cpu_request_millis or res.cpu_limit_millis
    cpu: dict[str, Any] = {"shares": max(2, request * 1024 // 1000) if request else 2}
    if res.cpu_limit_millis:
        cpu["quota"] = max(_MIN_CPU_QUOTA_US, res.cpu_limit_millis * _CPU_PERIOD_US // 1000)
        cpu["period"] = _CPU_PERIOD_US
    devices: list[dict[str, Any]] = [{"allow": spec.security.privileged, "access": "rwm"}]
    devices += [
        {"allow": True, "type": "c", "major": ma, "minor": mi if mi is not None else -1, "access": "rwm"}
        for ma, mi in _ALLOWED_DEVICES
    ]
    out: dict[str, Any] = {
        "devices": devices,
        "cpu": cpu,
        "pids": {"limit": res.pids_limit or DEFAULT_PIDS_LIMIT},
    }
    if res.memory_limit_bytes:
        out["memory"] = {"limit": res.memory_limit_bytes, "swap": res.memory_limit_bytes}
    if res.io_weight is not None and host.io_weight_supported:
        out["blockIO"] = {"weight": res.io_weight}
    return out


def _mounts(spec: ContainerSpec, host: HostFacts) -> list[dict[str, Any]]:
    priv = spec.security.privileged
    ro = [] if priv else ["ro"]
    sys_mount: dict[str, Any] = {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", *ro],
    }
    if spec.security.user_namespace:
        sys_mount = {
            "destination": "/sys",
            "type": "bind",
            "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
        }
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        sys_mount,
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", *ro],
        },
    ]
    for m in spec.mounts:
        if m.type == "bind":
            opts = ["rbind", "ro" if m.read_only else "rw", *m.options]
        else:
            opts = [*m.options, *(["ro"] if m.read_only else [])]
        mounts.append({"destination": m.destination, "type": m.type, "source": m.source, "options": opts})
    return mounts


def _namespaces(spec: ContainerSpec, host: HostFacts) -> list[dict[str, str]]:
    kinds = ["pid", "network", "mount", "uts", "ipc"]
    if spec.security.user_namespace:
        kinds.append("user")
    if host.cgroup_version == 2:
        kinds.append("cgroup")
    joins = {j.type: j.path for j in spec.join_namespaces}
    unknown = set(joins) - set(kinds) - {"user", "cgroup"}
    if unknown:
        raise SpecError("join_namespaces", f"unknown namespace type(s) {sorted(unknown)}; use network, ipc, uts, pid")
    return [{"type": k, "path": joins[k]} if k in joins else {"type": k} for k in kinds]


def build_config(spec: ContainerSpec, host: HostFacts, cgroups: str, rootfs: str = "rootfs") -> dict[str, Any]:
    """The config.json for ``spec``; raises ``SpecError`` naming the field when it cannot run safely."""
    _validate(spec)
    sec = spec.security
    caps = effective_capabilities(spec)
    nofile = min(DEFAULT_NOFILE, host.nofile_hard)
    env = dict(spec.env)
    env.setdefault("PATH", _DEFAULT_PATH)
    process: dict[str, Any] = {
        "terminal": False,
        "user": {
            "uid": spec.user.uid,
            "gid": spec.user.gid,
            "additionalGids": list(spec.user.additional_gids),
        },
        "args": list(spec.argv),
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": spec.working_dir,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": sec.no_new_privileges,
    }
    if sec.apparmor_profile:
        if not host.apparmor_enabled:
            raise SpecError(
                "security.apparmor_profile",
                f"AppArmor profile {sec.apparmor_profile!r} requested but this node's kernel has no "
                "AppArmor; the container is refused rather than run unconfined: drop the profile or "
                "schedule it on a node with AppArmor",
            )
        process["apparmorProfile"] = sec.apparmor_profile.removeprefix("localhost/")
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups,
        "resources": _resources(spec, host),
        "namespaces": _namespaces(spec, host),
    }
    if not sec.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if sec.seccomp is SeccompMode.RUNTIME_DEFAULT:
            try:
                linux["seccomp"] = default_profile(caps, host.machine)
            except UnsupportedArchitecture as exc:
                raise SpecError("security.seccomp", str(exc)) from exc
    if sec.user_namespace:
        linux["uidMappings"] = [{"containerID": 0, "hostID": host.userns_base, "size": _USERNS_SIZE}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": host.userns_base, "size": _USERNS_SIZE}]
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": sec.read_only_root},
        "mounts": _mounts(spec, host),
        "linux": linux,
        "annotations": {
            "io.shoal.pod.uid": spec.pod_uid,
            "io.shoal.pod.name": spec.pod_name,
            "io.shoal.pod.namespace": spec.pod_namespace,
            "io.shoal.container.name": spec.name,
        },
    }
    if not any(j.type == "uts" for j in spec.join_namespaces):
        config["hostname"] = spec.hostname or spec.pod_name
    return config
