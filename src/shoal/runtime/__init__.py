"""Container runtimes behind one Driver protocol: the protocol, the lifecycle, and the fake.

The OCI driver lives in ``shoal.runtime.oci`` and is imported only where it is used, so that
importing this package stays cheap for the agent. This package must not import server-side
layers (api, store, server, litestar).
"""

from shoal.runtime.fake import FakeDriver
from shoal.runtime.lifecycle import InvalidTransition, transition
from shoal.runtime.protocol import (
    Capabilities,
    ContainerInfo,
    ContainerNotFound,
    ContainerSpec,
    Driver,
    DriverError,
    ExecResult,
    ExecStream,
    LogLine,
    Mount,
    NamespaceJoin,
    Resources,
    SeccompMode,
    Security,
    SpecError,
    Stats,
    StopReason,
    TerminalSize,
    User,
    sandbox_joins,
)

__all__ = [
    "Capabilities",
    "ContainerInfo",
    "ContainerNotFound",
    "ContainerSpec",
    "Driver",
    "DriverError",
    "ExecResult",
    "ExecStream",
    "FakeDriver",
    "InvalidTransition",
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
    "transition",
]
