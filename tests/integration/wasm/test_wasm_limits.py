"""Limits of a wasm module under the real host: CPU, memory, and one module's failure staying its own."""

from __future__ import annotations

import time

from wasmlab import GROW, LOOP, TRAP, Lab, run

from shoal.model.pod import ContainerState
from shoal.runtime.protocol import Resources, StopReason

_MIB = 1 << 20


def test_an_infinite_loop_over_its_cpu_limit_is_stopped_with_the_reason(lab: Lab) -> None:
    spec = lab.spec("spin", lab.image("spin", LOOP), resources=Resources(cpu_limit_millis=100))

    async def body() -> None:
        began = time.monotonic()
        await lab.run(spec)
        info = await lab.driver.wait("spin", 10)
        assert (info.state, info.reason, info.exit_code) == (ContainerState.STOPPED, StopReason.ERROR, 137)
        assert time.monotonic() - began < 5
        message = (await lab.driver.status("spin")).message
        assert message.startswith("CPU limit exceeded:") and "its limit is 100m" in message
        logged = [line async for line in lab.driver.logs("spin")]
        assert logged[-1].stream == "stderr" and logged[-1].message == f"[wasm] {message}"

    run(body)


def test_an_infinite_loop_without_a_cpu_limit_keeps_running(lab: Lab) -> None:
    async def body() -> None:
        await lab.run(lab.spec("free", lab.image("free", LOOP)))
        began = time.monotonic()
        assert (await lab.driver.wait("free", 1.0)).state is ContainerState.RUNNING  # > the 0.3 s CPU window
        assert time.monotonic() - began >= 1.0
        await lab.driver.stop("free", 0)

    run(body)


def test_growing_memory_past_a_2mib_limit_fails_as_oomkilled(lab: Lab) -> None:
    image = lab.image("grow", GROW)

    async def body() -> None:
        await lab.run(lab.spec("capped", image, resources=Resources(memory_limit_bytes=2 * _MIB)))
        info = await lab.wait_stopped("capped")
        assert (info.reason, info.exit_code) == (StopReason.OOM_KILLED, 137)
        message = (await lab.driver.status("capped")).message
        assert message.startswith("memory limit exceeded:") and f"limit {2 * _MIB} bytes" in message
        await lab.run(lab.spec("roomy", image, resources=Resources(memory_limit_bytes=8 * _MIB)))
        roomy = await lab.wait_stopped("roomy")
        assert (roomy.reason, roomy.exit_code) == (StopReason.COMPLETED, 0)  # the same module, within its limit

    run(body)


def test_a_trap_in_one_module_leaves_another_running(lab: Lab) -> None:
    async def body() -> None:
        await lab.run(lab.spec("steady", lab.image("steady", LOOP)))
        await lab.run(lab.spec("crash", lab.image("crash", TRAP)))
        crashed = await lab.wait_stopped("crash")
        assert (crashed.reason, crashed.exit_code) == (StopReason.ERROR, 134)
        assert (await lab.driver.status("crash")).message.startswith("trap: ")
        logged = [line.message async for line in lab.driver.logs("crash")]
        assert logged[0] == "/app.wasm" and logged[-1].startswith("[wasm] trap: ")
        before = (await lab.driver.stats("steady")).cpu_usage_ns
        time.sleep(0.3)
        steady = await lab.driver.inspect("steady")
        assert steady.state is ContainerState.RUNNING
        assert (await lab.driver.stats("steady")).cpu_usage_ns > before  # still computing
        await lab.driver.stop("steady", 0)

    run(body)
