"""Secure defaults seen from inside a real runc container and in the host's cgroup files."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from runtimelab import Env

from shoal.model.pod import ContainerState
from shoal.runtime import ContainerSpec, Resources, Security, SpecError

DOCKER_CAPEFF = "00000000a80425fb"


def _spec(env: Env, cid: str, script: str, **kw: object) -> ContainerSpec:
    return ContainerSpec(
        id=cid,
        name="c",
        pod_uid="pod-sec",
        pod_name="sec",
        lower_dirs=(str(env.layer),),
        command=("sh", "-c", script),
        **kw,
    )  # type: ignore[arg-type]


def _status_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_container_runs_with_docker_caps_seccomp_and_no_new_privs(env: Env) -> None:
    async def scenario() -> dict[str, str]:
        d = env.driver
        await d.create(_spec(env, "sec1", "sleep 600"))
        await d.start("sec1")
        result = await d.exec("sec1", ["cat", "/proc/self/status"])
        assert result.exit_code == 0, result.stderr
        return _status_fields(result.stdout.decode())

    status = asyncio.run(scenario())
    assert status["CapEff"] == DOCKER_CAPEFF
    assert status["CapBnd"] == DOCKER_CAPEFF
    assert status["CapAmb"] == "0000000000000000"
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"


def test_init_process_itself_has_the_defaults(env: Env) -> None:
    async def scenario() -> str:
        d = env.driver
        await d.create(_spec(env, "sec2", "grep -E 'CapEff|Seccomp:|NoNewPrivs' /proc/self/status"))
        await d.start("sec2")
        await d.stop("sec2", grace=5)  # returns once it exited on its own
        return "\n".join([line.message async for line in d.logs("sec2")])

    out = _status_fields(asyncio.run(scenario()))
    assert out["CapEff"] == DOCKER_CAPEFF and out["Seccomp"] == "2" and out["NoNewPrivs"] == "1"


def test_limits_are_in_the_host_cgroup_files(env: Env) -> None:
    spec = _spec(
        env, "lim1", "sleep 600", resources=Resources(memory_limit_bytes=48 << 20, pids_limit=64, cpu_limit_millis=250)
    )

    async def scenario() -> None:
        await env.driver.create(spec)
        await env.driver.start("lim1")
        stats = await env.driver.stats("lim1")
        assert stats.memory_limit_bytes == 48 << 20
        assert stats.pids_current >= 1

    asyncio.run(scenario())
    rel = f"{env.cgroup_parent.strip('/')}/pod-sec/lim1"
    cg = Path("/sys/fs/cgroup")
    assert int((cg / "memory" / rel / "memory.limit_in_bytes").read_text()) == 48 << 20
    assert (cg / "pids" / rel / "pids.max").read_text().strip() == "64"
    assert (cg / "cpu" / rel / "cpu.cfs_quota_us").read_text().strip() == "25000"
    assert (cg / "cpu" / rel / "cpu.cfs_period_us").read_text().strip() == "100000"


def test_default_pids_limit_is_1024(env: Env) -> None:
    async def scenario() -> None:
        await env.driver.create(_spec(env, "lim2", "sleep 600"))

    asyncio.run(scenario())
    rel = f"{env.cgroup_parent.strip('/')}/pod-sec/lim2"
    assert Path(f"/sys/fs/cgroup/pids/{rel}/pids.max").read_text().strip() == "1024"


def test_sysrq_trigger_and_kernel_files_are_refused(env: Env) -> None:
    async def scenario() -> tuple[int, bytes, int, int]:
        d = env.driver
        await d.create(_spec(env, "sysrq", "sleep 600"))
        await d.start("sysrq")
        sysrq = await d.exec("sysrq", ["sh", "-c", "echo b > /proc/sysrq-trigger"])
        kcore = await d.exec("sysrq", ["sh", "-c", "head -c 1 /proc/kcore | wc -c"])
        sysctl = await d.exec("sysrq", ["sh", "-c", "echo 1 > /proc/sys/kernel/panic"])
        return sysrq.exit_code, kcore.stdout, sysctl.exit_code, (await d.inspect("sysrq")).pid

    sysrq_rc, kcore_bytes, sysctl_rc, pid = asyncio.run(scenario())
    assert sysrq_rc != 0
    assert kcore_bytes.strip() == b"0"  # masked: an empty file
    assert sysctl_rc != 0
    assert pid > 0  # and the host is, evidently, still up


def test_fork_bomb_is_contained_by_pids_limit(env: Env) -> None:
    bomb = "b() { b | b & }; b"

    async def scenario() -> tuple[int, float]:
        d = env.driver
        spec = _spec(env, "bomb", "sleep 600", resources=Resources(pids_limit=32, memory_limit_bytes=64 << 20))
        await d.create(spec)
        await d.start("bomb")
        t0 = time.monotonic()
        await d.exec("bomb", ["sh", "-c", f"({bomb}) >/dev/null 2>&1 & sleep 2"], timeout=20)
        peak = (await d.stats("bomb")).pids_current
        await d.stop("bomb", grace=0)
        return peak, time.monotonic() - t0

    peak, elapsed = asyncio.run(scenario())
    assert 1 <= peak <= 32
    assert elapsed < 20


def test_apparmor_profile_is_refused_on_a_kernel_without_apparmor(env: Env) -> None:
    spec = _spec(env, "aa1", "true", security=Security(apparmor_profile="localhost/strict"))
    with pytest.raises(SpecError, match="AppArmor") as err:
        asyncio.run(env.driver.create(spec))
    assert err.value.field == "security.apparmor_profile"
    assert not (env.root_dir / "aa1").exists()


def test_read_only_root_and_dropped_capability(env: Env) -> None:
    spec = _spec(env, "ro1", "sleep 600", security=Security(read_only_root=True, cap_drop=("CHOWN",)))

    async def scenario() -> tuple[int, str]:
        await env.driver.create(spec)
        info = await env.driver.start("ro1")
        assert info.state is ContainerState.RUNNING
        write = await env.driver.exec("ro1", ["sh", "-c", "echo x > /root/f"])
        status = await env.driver.exec("ro1", ["cat", "/proc/self/status"])
        return write.exit_code, _status_fields(status.stdout.decode())["CapEff"]

    rc, capeff = asyncio.run(scenario())
    assert rc != 0
    assert int(capeff, 16) == int(DOCKER_CAPEFF, 16) & ~1  # CAP_CHOWN is bit 0
