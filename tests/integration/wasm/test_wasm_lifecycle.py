"""A wasm module's life under the real host: output in the CRI log, exit codes, restart, errors."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from wasmlab import HELLO, LOOP, WRITE_FILE, Lab, exits, run

from shoal.model.pod import ContainerState
from shoal.runtime.lifecycle import InvalidTransition
from shoal.runtime.oci.logs import parse_line
from shoal.runtime.protocol import ContainerNotFound, DriverError, Mount, SpecError, StopReason


def test_hello_prints_args_and_env_to_the_cri_log_and_exits_0(lab: Lab) -> None:
    spec = lab.spec("hello", lab.image("hello", HELLO), args=("one", "two"), env=(("GREETING", "hi"),))

    async def body() -> None:
        created = await lab.driver.create(spec)
        assert created.state is ContainerState.CREATED
        await lab.driver.start("hello")
        info = await lab.wait_stopped("hello")
        assert (info.state, info.exit_code, info.reason) == (ContainerState.STOPPED, 0, StopReason.COMPLETED)
        assert info.started_at is not None and info.finished_at is not None
        lines = [line async for line in lab.driver.logs("hello")]
        assert [(x.stream, x.partial, x.message) for x in lines] == [
            ("stdout", False, "/app.wasm one two"),
            ("stdout", False, "GREETING=hi"),
        ]

    run(body)
    raw = Path(spec.log_path).read_text().splitlines()
    assert raw[0].endswith(" stdout F /app.wasm one two")
    assert all(parse_line(line) is not None for line in raw)


def test_exit_code_is_recorded_and_a_stopped_module_can_start_again(lab: Lab) -> None:
    spec = lab.spec("three", lab.image("three", exits(3)))

    async def body() -> None:
        await lab.run(spec)
        info = await lab.wait_stopped("three")
        assert (info.exit_code, info.reason) == (3, StopReason.ERROR)
        again = await lab.driver.start("three")  # restartPolicy: the agent starts it again
        assert again.state in (ContainerState.RUNNING, ContainerState.STOPPED)
        assert (await lab.wait_stopped("three")).exit_code == 3
        lines = [line.message async for line in lab.driver.logs("three")]
        assert lines.count("/app.wasm") == 2  # both runs wrote to the log
        await lab.driver.remove("three")
        with pytest.raises(ContainerNotFound):
            await lab.driver.inspect("three")
        assert await lab.driver.recover() == []

    run(body)


def test_stop_pause_resume_a_busy_module_and_refused_transitions(lab: Lab) -> None:
    spec = lab.spec("busy", lab.image("busy", LOOP))

    async def body() -> None:
        with pytest.raises(InvalidTransition, match="cannot go from Created to Paused"):
            await lab.driver.create(spec)
            await lab.driver.pause("busy")
        await lab.driver.start("busy")
        assert (await lab.driver.pause("busy")).state is ContainerState.PAUSED
        paused_cpu = (await lab.driver.stats("busy")).cpu_usage_ns
        assert (await lab.driver.resume("busy")).state is ContainerState.RUNNING
        stats = await lab.driver.stats("busy")
        assert stats.pids_current == 1 and stats.cpu_usage_ns >= paused_cpu
        for _ in range(100):  # the run thread instantiates the module (and its memory) on its own time
            if stats.memory_usage_bytes:
                break
            await asyncio.sleep(0.05)
            stats = await lab.driver.stats("busy")
        assert stats.memory_usage_bytes == 65536  # one page of linear memory
        with pytest.raises(InvalidTransition, match="cannot go from Running to Removed"):
            await lab.driver.remove("busy")
        with pytest.raises(DriverError, match="exec is not available for wasm"):
            await lab.driver.exec("busy", ["sh"])
        stopped = await lab.driver.stop("busy", 1.0)
        assert stopped.state is ContainerState.STOPPED and stopped.exit_code == 137
        assert (await lab.driver.status("busy")).message == "stopped on request"
        await lab.driver.remove("busy")

    run(body)


def test_an_image_without_a_module_or_with_a_bad_one_is_a_spec_error(lab: Lab) -> None:
    empty = lab.tmp / "images" / "empty"
    empty.mkdir(parents=True)
    (empty / "README").write_text("no module here")
    broken = lab.tmp / "images" / "broken"
    broken.mkdir(parents=True)
    (broken / "app.wasm").write_bytes(b"\0asm\x01\0\0\0garbage")

    async def body() -> None:
        with pytest.raises(SpecError, match=r"^image: no \.wasm file in the image"):
            await lab.driver.create(lab.spec("empty", (str(empty),)))
        with pytest.raises(SpecError, match=r"app\.wasm is not a valid WebAssembly module"):
            await lab.driver.create(lab.spec("broken", (str(broken),)))
        assert await lab.driver.recover() == []

    run(body)


def test_volumes_are_preopened_dirs_and_read_only_ones_refuse_writes(lab: Lab) -> None:
    image = lab.image("writer", WRITE_FILE)
    rw, ro = lab.tmp / "vol-rw", lab.tmp / "vol-ro"
    rw.mkdir()
    ro.mkdir()

    async def body() -> None:
        await lab.run(replace(lab.spec("rw", image), mounts=(Mount("/data", str(rw)),)))
        assert (await lab.wait_stopped("rw")).exit_code == 0
        await lab.run(replace(lab.spec("ro", image), mounts=(Mount("/data", str(ro), read_only=True),)))
        code = (await lab.wait_stopped("ro")).exit_code
        assert code is not None and code > 10  # path_open failed with an errno

    run(body)
    assert (rw / "out.txt").read_text() == "saved\n"
    assert not (ro / "out.txt").exists()
