"""The wasm host as a process: it outlives the driver, is adopted by a new one, and caches compiled modules."""

from __future__ import annotations

import gc
import os
import time
from importlib.metadata import version

import pytest
from wasmlab import LOOP, Lab, big_module, run

from shoal.model.pod import ContainerState
from shoal.runtime.protocol import ContainerNotFound, DriverError
from shoal.runtime.wasm import WasmDriver


def test_the_host_outlives_the_driver_and_recover_adopts_the_running_instance(lab: Lab) -> None:
    spec = lab.spec("keep", lab.image("keep", LOOP))

    async def first() -> tuple[int, object]:
        started = await lab.run(spec)
        assert started.pid > 0
        return lab.driver.host_pid(), started.started_at

    host_pid, started_at = run(first)
    assert host_pid > 0 and host_pid != os.getpid()
    lab.driver = WasmDriver(lab.tmp / "wasm", cpu_window=0.3)  # the agent restarted: the old driver is gone
    gc.collect()
    os.kill(host_pid, 0)  # still running

    async def second() -> None:
        (adopted,) = await lab.driver.recover()
        assert (adopted.id, adopted.state, adopted.started_at) == ("keep", ContainerState.RUNNING, started_at)
        assert lab.driver.host_pid() == host_pid  # not a new host, not restarted
        assert (await lab.driver.fingerprint()).runtime == "wasmtime"
        await lab.driver.stop("keep", 0)

    run(second)


def test_a_new_host_reports_instances_of_a_dead_one_as_stopped(lab: Lab) -> None:
    spec = lab.spec("orphan", lab.image("orphan", LOOP))

    async def body() -> None:
        await lab.run(spec)
        old = lab.driver.host_pid()
        os.kill(old, 9)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(old, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        (info,) = await lab.driver.recover()  # starts a new host
        assert lab.driver.host_pid() not in (0, old)
        assert info.state is ContainerState.STOPPED
        assert (await lab.driver.status("orphan")).message == "the wasm host stopped while it ran"
        again = await lab.driver.start("orphan")  # the agent restarts it as it would a container
        assert again.state is ContainerState.RUNNING
        await lab.driver.stop("orphan", 0)

    run(body)


def test_a_cached_module_starts_faster_than_a_cold_compile(lab: Lab) -> None:
    image = lab.image("big", big_module())

    async def body() -> tuple[float, float, float, float]:
        await lab.driver.fingerprint()  # start the host first: measure only create
        began = time.perf_counter()
        await lab.driver.create(lab.spec("cold", image))
        cold_wall = time.perf_counter() - began
        began = time.perf_counter()
        await lab.driver.create(lab.spec("warm", image))
        warm_wall = time.perf_counter() - began
        cold, warm = await lab.driver.status("cold"), await lab.driver.status("warm")
        assert (cold.cached, warm.cached) == (False, True)
        assert len(list((lab.tmp / "wasm" / "cache").glob(f"*-{version('wasmtime')}.cwasm"))) == 1
        for cid in ("cold", "warm"):
            await lab.driver.start(cid)
            assert (await lab.wait_stopped(cid)).exit_code == 0
        return cold.load_ms, warm.load_ms, cold_wall * 1000, warm_wall * 1000

    cold_ms, warm_ms, cold_wall, warm_wall = run(body)
    print(f"\nmodule load: cold compile {cold_ms:.1f} ms, cached {warm_ms:.1f} ms; "
          f"create: cold {cold_wall:.1f} ms, cached {warm_wall:.1f} ms")
    assert warm_ms * 3 < cold_ms
    assert warm_wall < cold_wall


def test_a_host_that_cannot_start_is_a_clear_error(lab: Lab) -> None:
    broken = WasmDriver(lab.tmp / "nohost", python="/bin/false", start_timeout=1.0)

    async def body() -> None:
        with pytest.raises(DriverError, match="the wasm host did not start within 1s"):
            await broken.fingerprint()
        unused = WasmDriver(lab.tmp / "never-used")
        assert await unused.recover() == []  # no wasm pod here: no host started
        with pytest.raises(ContainerNotFound):
            await unused.inspect("some-oci-container")  # what RuntimeRouter asks about an id it has not seen
        assert not (lab.tmp / "never-used").exists()

    run(body)
