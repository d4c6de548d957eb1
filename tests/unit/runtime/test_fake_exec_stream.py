"""The fake runtime's interactive exec, which agent and tunnel tests rely on: stdin comes back as
output, ``exit N`` ends it with N, EOF ends it with 0, closing it early reports a kill, and it
refuses containers that are not running."""

from __future__ import annotations

import asyncio

import pytest

from shoal.runtime import ContainerSpec, DriverError, FakeDriver
from shoal.runtime.protocol import TerminalSize


async def _driver() -> FakeDriver:
    driver = FakeDriver()
    await driver.create(ContainerSpec(id="c1", name="app", pod_uid="u1", pod_name="web"))
    return driver


async def _output(stream: object) -> list[tuple[str, bytes]]:
    return [item async for item in stream.output()]  # type: ignore[attr-defined]


def test_echo_exit_code_and_sizes() -> None:
    async def scenario() -> None:
        driver = await _driver()
        with pytest.raises(DriverError, match="is Created; exec needs Running"):
            await driver.exec_stream("c1", ["sh"])
        await driver.start("c1")
        stream = await driver.exec_stream("c1", ["sh"], tty=True, stdin=True, size=TerminalSize(24, 80))
        stream.resize(TerminalSize(50, 132))
        await stream.write(b"echo hi\n")
        await stream.write(b"exit 7\n")
        assert await asyncio.wait_for(_output(stream), 1) == [("stdout", b"echo hi\n"), ("stdout", b"exit 7\n")]
        assert await stream.wait() == 7
        assert stream.sizes == [TerminalSize(24, 80), TerminalSize(50, 132)]
        with pytest.raises(DriverError, match="no stdin open"):
            await stream.write(b"late")

        piped = await driver.exec_stream("c1", ["cat"], stdin=True)
        await piped.write(b"data")
        await piped.close_stdin()
        assert await asyncio.wait_for(_output(piped), 1) == [("stdout", b"data")]
        assert await piped.wait() == 0

        killed = await driver.exec_stream("c1", ["sleep", "9"], stdin=True)
        await killed.write(b"unread")
        await killed.close()
        assert await asyncio.wait_for(_output(killed), 1) == []
        assert (await killed.wait(), killed.closed) == (137, True)

    asyncio.run(scenario())
