"""The wire format between the agent's WasmDriver and the node's wasm host: one JSON object a line.

Owns the request and reply Structs, the error kinds a reply carries and their mapping back to the
driver errors of ``shoal.runtime.protocol``. It must not open sockets or import wasmtime: the driver
and the host both import it, and the agent must stay lean.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from shoal.model.pod import ContainerState
from shoal.runtime.lifecycle import InvalidTransition
from shoal.runtime.protocol import (
    ContainerInfo,
    ContainerNotFound,
    ContainerSpec,
    DriverError,
    SpecError,
    StopReason,
)

__all__ = ["ErrorKind", "InstanceStatus", "Op", "Reply", "Request", "raise_for", "reply_error", "to_info"]


class Op(StrEnum):
    CREATE = "create"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    REMOVE = "remove"
    INSPECT = "inspect"
    LIST = "list"
    STATS = "stats"
    WAIT = "wait"  # until the instance is no longer Running/Paused, at most `grace` seconds
    VERSION = "version"
    SHUTDOWN = "shutdown"


class ErrorKind(StrEnum):
    NOT_FOUND = "NotFound"
    INVALID_TRANSITION = "InvalidTransition"
    SPEC = "Spec"
    DRIVER = "Driver"


class Request(msgspec.Struct, frozen=True, omit_defaults=True):
    op: Op
    id: str = ""
    spec: ContainerSpec | None = None
    grace: float = 0.0


class InstanceStatus(msgspec.Struct, frozen=True, omit_defaults=True):
    """One module instance as the host reports it (and persists it in ``instances/<id>/status.json``)."""

    id: str
    name: str
    pod_uid: str
    state: ContainerState
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: StopReason | None = None
    pid: int = 0  # the wasm host's pid while the instance runs (it has no process of its own)
    message: str = ""  # why it stopped, in words ("CPU limit exceeded: ...")
    module: str = ""  # the .wasm file it runs
    log_path: str = ""  # its CRI k8s-file log
    cached: bool = False  # the compiled module came from ROOT/cache
    load_ms: float = 0.0  # time to compile or deserialize the module
    cpu_usage_ns: int = 0
    memory_bytes: int = 0
    memory_limit_bytes: int | None = None


class Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    ok: bool
    error: str = ""
    kind: ErrorKind = ErrorKind.DRIVER
    field: str = ""  # SpecError: the offending ContainerSpec field
    current: ContainerState | None = None  # InvalidTransition
    target: ContainerState | None = None
    status: InstanceStatus | None = None
    items: list[InstanceStatus] = []
    version: str = ""


def reply_error(exc: Exception) -> Reply:
    """The reply that carries ``exc`` across the socket (the driver rebuilds it with ``raise_for``)."""
    if isinstance(exc, ContainerNotFound):
        return Reply(ok=False, error=str(exc), kind=ErrorKind.NOT_FOUND, field=exc.container_id)
    if isinstance(exc, InvalidTransition):
        return Reply(ok=False, error=str(exc), kind=ErrorKind.INVALID_TRANSITION, current=exc.current,
                     target=exc.target)
    if isinstance(exc, SpecError):
        return Reply(ok=False, error=str(exc).removeprefix(f"{exc.field}: "), kind=ErrorKind.SPEC, field=exc.field)
    return Reply(ok=False, error=str(exc), kind=ErrorKind.DRIVER)


def raise_for(reply: Reply, container_id: str = "") -> Reply:
    """``reply`` if it is ok, else the driver error it carries."""
    if reply.ok:
        return reply
    if reply.kind is ErrorKind.NOT_FOUND:
        raise ContainerNotFound(reply.field or container_id)
    if reply.kind is ErrorKind.INVALID_TRANSITION and reply.current is not None and reply.target is not None:
        raise InvalidTransition(reply.current, reply.target, container_id)
    if reply.kind is ErrorKind.SPEC:
        raise SpecError(reply.field, reply.error)
    raise DriverError(f"wasm host: {reply.error}")


def to_info(status: InstanceStatus) -> ContainerInfo:
    return ContainerInfo(
        id=status.id,
        name=status.name,
        pod_uid=status.pod_uid,
        state=status.state,
        pid=status.pid,
        exit_code=status.exit_code,
        started_at=status.started_at,
        finished_at=status.finished_at,
        reason=status.reason,
    )
