"""FakeDriver honours the Driver protocol and the lifecycle, so agent tests can trust it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from shoal.model.pod import ContainerState
from shoal.runtime import (
    ContainerNotFound,
    ContainerSpec,
    Driver,
    DriverError,
    ExecResult,
    FakeDriver,
    InvalidTransition,
    StopReason,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(cid: str = "c1") -> ContainerSpec:
    return ContainerSpec(id=cid, name="app", pod_uid="u1", pod_name="p", rootfs_path="/r", command=("run",))


def test_full_lifecycle_and_restart() -> None:
    async def scenario() -> None:
        d: Driver = FakeDriver(clock=lambda: T0)
        assert (await d.create(_spec())).state is ContainerState.CREATED
        first = await d.start("c1")
        assert first.state is ContainerState.RUNNING and first.started_at == T0
        assert (await d.pause("c1")).state is ContainerState.PAUSED
        assert (await d.resume("c1")).state is ContainerState.RUNNING
        stopped = await d.stop("c1", grace=5)
        assert (stopped.state, stopped.exit_code, stopped.pid) == (ContainerState.STOPPED, 143, 0)
        again = await d.start("c1")
        assert again.pid != first.pid and again.exit_code is None
        await d.stop("c1", grace=0)
        await d.remove("c1")
        with pytest.raises(ContainerNotFound):
            await d.inspect("c1")
        assert await d.recover() == []

    asyncio.run(scenario())


def test_invalid_transitions_and_duplicates_are_refused() -> None:
    async def scenario() -> None:
        d = FakeDriver()
        await d.create(_spec())
        with pytest.raises(DriverError, match="already exists"):
            await d.create(_spec())
        with pytest.raises(InvalidTransition, match=r"Created.*Paused"):
            await d.pause("c1")
        await d.start("c1")
        with pytest.raises(InvalidTransition, match=r"Running.*Removed"):
            await d.remove("c1")
        await d.pause("c1")
        with pytest.raises(DriverError, match="exec needs Running"):
            await d.exec("c1", ["ls"])

    asyncio.run(scenario())


def test_simulated_exit_oom_logs_and_exec() -> None:
    async def scenario() -> None:
        d = FakeDriver(exec_handler=lambda cid, argv: ExecResult(0, " ".join(argv).encode(), b""))
        await d.create(_spec())
        await d.start("c1")
        assert (await d.exec("c1", ["echo", "hi"])).stdout == b"echo hi"
        for i in range(3):
            d.write_log("c1", f"m{i}")
        assert [x.message async for x in d.logs("c1", tail=2)] == ["m1", "m2"]
        info = d.exit("c1", 137, oom=True)
        assert info.reason is StopReason.OOM_KILLED
        assert (await d.stop("c1", grace=1)).exit_code == 137  # stopping a stopped container is a no-op

    asyncio.run(scenario())
