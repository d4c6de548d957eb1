"""Lifecycle of real containers under conmon + runc: start latency, stop with grace, pause,
restart, survival across driver restarts, exit codes, OOM, logs, exec, and leak-free removal."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import pytest
from runtimelab import Env

from shoal.model.pod import ContainerState
from shoal.runtime import ContainerSpec, InvalidTransition, Resources, StopReason, sandbox_joins


def _spec(env: Env, cid: str, script: str, pod: str = "pod-a", **kw: object) -> ContainerSpec:
    return ContainerSpec(
        id=cid,
        name=cid,
        pod_uid=pod,
        pod_name="web-1",
        lower_dirs=(str(env.layer),),
        command=("sh", "-c", script),
        **kw,
    )  # type: ignore[arg-type]


def test_create_start_is_fast_and_reports_running_pid(env: Env) -> None:
    async def scenario() -> list[float]:
        took = []
        for i in range(8):
            t0 = time.perf_counter()
            await env.driver.create(_spec(env, f"fast{i}", "sleep 600"))
            info = await env.driver.start(f"fast{i}")
            took.append((time.perf_counter() - t0) * 1000)
            assert info.state is ContainerState.RUNNING and info.pid > 0
            assert os.path.exists(f"/proc/{info.pid}")
        for i in range(8):
            await env.driver.stop(f"fast{i}", grace=0)
            await env.driver.remove(f"fast{i}")
        return took

    took = asyncio.run(scenario())
    p50 = statistics.median(took)
    print(f"create+start p50 {p50:.1f} ms (all: {[round(t) for t in took]})")
    assert p50 < 500


def test_stop_sends_sigterm_then_sigkill_after_grace(env: Env) -> None:
    polite = "trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done"
    stubborn = "trap '' TERM; while true; do sleep 0.1; done"

    async def scenario() -> None:
        d = env.driver
        for cid, script in (("polite", polite), ("stubborn", stubborn)):
            await d.create(_spec(env, cid, script))
            await d.start(cid)
        t0 = time.monotonic()
        info = await d.stop("polite", grace=10)
        assert time.monotonic() - t0 < 5
        assert info.state is ContainerState.STOPPED and info.exit_code == 3 and info.reason is StopReason.ERROR
        assert [line.message async for line in d.logs("polite")] == ["bye"]
        t0 = time.monotonic()
        info = await d.stop("stubborn", grace=1)
        assert 0.9 <= time.monotonic() - t0 < 8
        assert info.exit_code == 137 and info.finished_at is not None

    asyncio.run(scenario())


def test_pause_resume_and_invalid_transitions_name_both_states(env: Env) -> None:
    async def scenario() -> None:
        d = env.driver
        await d.create(_spec(env, "pz", "sleep 600"))
        with pytest.raises(InvalidTransition, match=r"Created.*Paused"):
            await d.pause("pz")
        await d.start("pz")
        assert (await d.pause("pz")).state is ContainerState.PAUSED
        with pytest.raises(InvalidTransition, match=r"Paused.*Removed"):
            await d.remove("pz")
        assert (await d.resume("pz")).state is ContainerState.RUNNING
        with pytest.raises(InvalidTransition, match=r"Running.*Removed"):
            await d.remove("pz")
        assert (await d.stop("pz", grace=0)).state is ContainerState.STOPPED
        with pytest.raises(InvalidTransition, match=r"Stopped.*Paused"):
            await d.pause("pz")

    asyncio.run(scenario())


def test_stopped_container_restarts_with_its_writable_layer(env: Env) -> None:
    async def scenario() -> None:
        d = env.driver
        await d.create(_spec(env, "rs", "echo run >> /root/count; sleep 600"))

        async def runs_written(n: int) -> bytes:
            out = b""
            for _ in range(100):  # the shell appends its line right after it starts
                out = (await d.exec("rs", ["cat", "/root/count"])).stdout
                if out.count(b"run") >= n:
                    break
                await asyncio.sleep(0.05)
            return out

        first = await d.start("rs")
        assert await runs_written(1) == b"run\n"
        await d.stop("rs", grace=0)
        second = await d.start("rs")
        assert second.state is ContainerState.RUNNING and second.pid != first.pid
        assert await runs_written(2) == b"run\nrun\n"
        assert (env.layer / "root" / "count").exists() is False  # the shared layer is untouched

    asyncio.run(scenario())


def test_container_survives_driver_and_loop_and_is_adopted_with_same_pid(env: Env) -> None:
    async def first_life() -> int:
        await env.driver.create(_spec(env, "keep", "sleep 600"))
        return (await env.driver.start("keep")).pid

    pid = asyncio.run(first_life())
    del env.driver
    assert os.path.exists(f"/proc/{pid}")

    async def second_life() -> None:
        driver = env.new_driver()
        found = {c.id: c for c in await driver.recover()}
        assert found["keep"].state is ContainerState.RUNNING
        assert found["keep"].pid == pid
        assert found["keep"].started_at is not None
        assert (await driver.exec("keep", ["true"])).exit_code == 0
        await driver.stop("keep", grace=0)
        await driver.remove("keep")
        assert await driver.recover() == []

    asyncio.run(second_life())


def test_exit_code_and_oom_kill_are_recorded(env: Env) -> None:
    async def scenario() -> None:
        d = env.driver
        await d.create(_spec(env, "ok", "exit 0"))
        await d.create(_spec(env, "bad", "exit 7"))
        await d.create(_spec(env, "oom", "tail /dev/zero", resources=Resources(memory_limit_bytes=16 << 20)))
        for cid in ("ok", "bad", "oom"):
            await d.start(cid)
        for cid in ("ok", "bad", "oom"):
            await d.stop(cid, grace=20)  # each ends by itself well within the grace
        ok, bad, oom = [await d.inspect(c) for c in ("ok", "bad", "oom")]
        assert (ok.exit_code, ok.reason) == (0, StopReason.COMPLETED)
        assert (bad.exit_code, bad.reason) == (7, StopReason.ERROR)
        assert oom.reason is StopReason.OOM_KILLED and oom.exit_code == 137

    asyncio.run(scenario())


def test_logs_tail_and_follow(env: Env) -> None:
    async def scenario() -> None:
        d = env.driver
        await d.create(_spec(env, "lg", "for i in 1 2 3 4 5; do echo line$i; echo err$i >&2; done; sleep 1; echo last"))
        await d.start("lg")
        followed = [line async for line in d.logs("lg", follow=True)]
        assert [f.message for f in followed if f.stream == "stdout"] == [f"line{i}" for i in range(1, 6)] + ["last"]
        assert {f.stream for f in followed} == {"stdout", "stderr"}
        tail = [line.message async for line in d.logs("lg", tail=2)]
        assert tail[-1] == "last" and len(tail) == 2

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_sandbox_shares_net_ipc_uts_and_hostname_is_pod_name(env: Env) -> None:
    async def scenario() -> None:
        d = env.driver
        await d.create(_spec(env, "first", "sleep 600", pod="pod-s"))
        first = await d.start("first")
        await d.create(_spec(env, "second", "sleep 600", pod="pod-s", join_namespaces=sandbox_joins(first.pid)))
        second = await d.start("second")
        for ns in ("net", "ipc", "uts"):
            assert os.readlink(f"/proc/{first.pid}/ns/{ns}") == os.readlink(f"/proc/{second.pid}/ns/{ns}")
        assert os.readlink(f"/proc/{first.pid}/ns/pid") != os.readlink(f"/proc/{second.pid}/ns/pid")
        assert os.readlink(f"/proc/{first.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        hostname = await d.exec("second", ["cat", "/proc/sys/kernel/hostname"])
        assert hostname.stdout.strip() == b"web-1"

    asyncio.run(scenario())


def test_remove_leaves_no_mounts_cgroups_or_bundle(env: Env) -> None:
    async def scenario() -> None:
        d = env.driver
        await d.create(_spec(env, "gone1", "sleep 600"))
        await d.create(_spec(env, "gone2", "sleep 600"))
        await d.start("gone1")
        assert len(env.mounts_under(env.root_dir)) == 2
        assert env.cgroup_dirs()
        await d.stop("gone1", grace=0)
        await d.remove("gone1")
        await d.remove("gone2")  # never started: Created → Removed

    asyncio.run(scenario())
    assert env.mounts_under(env.root_dir) == []
    assert env.cgroup_dirs() == []
    assert sorted(p.name for p in env.root_dir.iterdir() if not p.name.startswith(".")) == []
