"""CRI k8s-file log parsing, tail and follow (with conmon's truncation)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.runtime.oci.logs import parse_line, read_log


def test_parse_line() -> None:
    line = parse_line("2026-11-23T11:17:13.81+00:00 stderr P half a line\n")
    assert line is not None
    assert (line.stream, line.partial, line.message) == ("stderr", True, "half a line")
    empty = parse_line("2026-11-23T11:17:13.81+00:00 stdout F")
    assert empty is not None and empty.message == ""
    assert parse_line("garbage") is None
    assert parse_line("ts stdin F x") is None


def test_tail_and_follow_until_not_alive(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("".join(f"t stdout F l{i}\n" for i in range(5)))
    alive = [True]

    async def writer() -> None:
        await asyncio.sleep(0.05)
        with log.open("a") as f:
            f.write("t stdout F l5\n")
        await asyncio.sleep(0.15)
        log.write_text("t stdout F after-truncate\n")
        await asyncio.sleep(0.25)
        alive[0] = False

    async def scenario() -> tuple[list[str], list[str]]:
        tail = [x.message async for x in read_log(log, 2, False, lambda: True)]
        task = asyncio.ensure_future(writer())
        followed = [x.message async for x in read_log(log, 1, True, lambda: alive[0])]
        await task
        return tail, followed

    tail, followed = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert tail == ["l3", "l4"]
    assert followed == ["l4", "l5", "after-truncate"]


def test_missing_log_is_empty(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        return [x.message async for x in read_log(tmp_path / "none", None, True, lambda: False)]

    assert asyncio.run(scenario()) == []
