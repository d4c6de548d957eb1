"""The Driver contract between the agent and a container runtime, with the data it speaks.

Owns the frozen dataclasses a driver takes and returns (``ContainerSpec`` and its parts,
``ContainerInfo``, ``Stats``, ``ExecResult``, ``LogLine``, ``Capabilities``, ``TerminalSize``), the errors
every driver raises, the ``Driver`` protocol itself and the ``ExecStream`` an interactive exec returns.
It must not run anything or touch the host:
the OCI driver, the wasm driver and the in-memory fake implement it elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from shoal.model.pod import ContainerState

__all__ = [
    "Capabilities",
    "ContainerInfo",
    "ContainerNotFound",
    "ContainerSpec",
    "Driver",
    "DriverError",
    "ExecResult",
    "ExecStream",
    "LogLine",
    "Mount",
    "NamespaceJoin",
    "Resources",
    "SeccompMode",
    "Security",
    "SpecError",
    "Stats",
    "StopReason",
    "TerminalSize",
    "User",
    "sandbox_joins",
]


class DriverError(Exception):
    """Base of every error a driver raises; the message says what failed and what to do."""


class ContainerNotFound(DriverError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} does not exist on this node; list containers with recover()")
        self.container_id = container_id


class SpecError(DriverError):
    """A ContainerSpec the runtime refuses; ``field`` names the offending spec field."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path


class SeccompMode(StrEnum):
    RUNTIME_DEFAULT = "RuntimeDefault"
    UNCONFINED = "Unconfined"


class StopReason(StrEnum):
    """Why a container is Stopped, as shown in a pod's containerStatuses."""

    COMPLETED = "Completed"
    ERROR = "Error"
    OOM_KILLED = "OOMKilled"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Mount:
    destination: str
    source: str
    type: str = "bind"
    read_only: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """Cgroup limits; None means unlimited (pids falls back to the runtime default, 1024)."""

    cpu_request_millis: int | None = None
    cpu_limit_millis: int | None = None
    memory_limit_bytes: int | None = None
    pids_limit: int | None = None
    io_weight: int | None = None


@dataclass(frozen=True, slots=True)
class Security:
    read_only_root: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    seccomp: SeccompMode = SeccompMode.RUNTIME_DEFAULT
    apparmor_profile: str = ""
    no_new_privileges: bool = True
    user_namespace: bool = False


@dataclass(frozen=True, slots=True)
class User:
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NamespaceJoin:
    """Join an existing namespace instead of creating one: ``type`` is an OCI namespace type
    ("network", "ipc", "uts", ...) and ``path`` e.g. ``/proc/1234/ns/net``."""

    type: str
    path: str


def sandbox_joins(sandbox_pid: int) -> tuple[NamespaceJoin, ...]:
    """The joins that put a container in the pod sandbox of the pod's first container."""
    return (
        NamespaceJoin("network", f"/proc/{sandbox_pid}/ns/net"),
        NamespaceJoin("ipc", f"/proc/{sandbox_pid}/ns/ipc"),
        NamespaceJoin("uts", f"/proc/{sandbox_pid}/ns/uts"),
    )


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """One container as the agent asks the runtime to run it.

    The root filesystem is either ``lower_dirs`` (unpacked image layers, topmost first, joined
    by an overlay with a per-container writable upper) or ``rootfs_path`` (a ready directory).
    """

    id: str
    name: str
    pod_uid: str
    pod_name: str
    pod_namespace: str = "default"
    lower_dirs: tuple[str, ...] = ()
    rootfs_path: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = "/"
    user: User = field(default_factory=User)
    mounts: tuple[Mount, ...] = ()
    resources: Resources = field(default_factory=Resources)
    security: Security = field(default_factory=Security)
    join_namespaces: tuple[NamespaceJoin, ...] = ()
    hostname: str = ""
    log_path: str = ""
    runtime: str = "oci"  # "oci" | "wasm": which driver runs it (the pod's spec.runtime)

    @property
    def argv(self) -> tuple[str, ...]:
        return self.command + self.args


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    name: str
    pod_uid: str
    state: ContainerState
    pid: int = 0
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: StopReason | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    cpu_usage_ns: int
    memory_usage_bytes: int
    memory_working_set_bytes: int
    memory_limit_bytes: int | None
    pids_current: int


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True, slots=True)
class TerminalSize:
    """A terminal's window size in character cells."""

    rows: int
    cols: int


class ExecStream(Protocol):
    """A process started by ``Driver.exec_stream``: live output, stdin, window size and exit code."""

    tty: bool

    def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """("stdout" | "stderr", bytes) as the process writes them (a terminal is all "stdout")."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None:
        """End of input (a terminal gets the Ctrl-D a user would type)."""
        ...

    def resize(self, size: TerminalSize) -> None: ...

    async def wait(self) -> int:
        """The exit code (128+N when killed by signal N); DriverError when the process could not run."""
        ...

    async def close(self) -> None:
        """Kill the process if it still runs and release what it holds; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp: str
    stream: str  # "stdout" | "stderr"
    partial: bool
    message: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a node's runtime can do, as reported on its Node object."""

    runtime: str
    version: str
    cgroup_version: int
    seccomp: bool
    apparmor: bool
    user_namespaces: bool


class Driver(Protocol):
    """A container runtime on one node. Every method is idempotent where the lifecycle allows
    it and raises ``InvalidTransition`` (naming both states) where it does not."""

    async def fingerprint(self) -> Capabilities: ...

    async def create(self, spec: ContainerSpec) -> ContainerInfo: ...

    async def start(self, container_id: str) -> ContainerInfo: ...

    async def pause(self, container_id: str) -> ContainerInfo: ...

    async def resume(self, container_id: str) -> ContainerInfo: ...

    async def stop(self, container_id: str, grace: float) -> ContainerInfo: ...

    async def remove(self, container_id: str) -> None: ...

    async def inspect(self, container_id: str) -> ContainerInfo: ...

    async def recover(self) -> list[ContainerInfo]:
        """Every container this node still knows (running ones are adopted, not restarted)."""
        ...

    def logs(self, container_id: str, tail: int | None = None, follow: bool = False) -> AsyncIterator[LogLine]: ...

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float = 30.0) -> ExecResult: ...

    async def exec_stream(self, container_id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
                          size: TerminalSize | None = None) -> ExecStream:
        """Start ``argv`` in a running container, interactively (with ``tty``, on a pseudo-terminal)."""
        ...

    async def stats(self, container_id: str) -> Stats: ...
