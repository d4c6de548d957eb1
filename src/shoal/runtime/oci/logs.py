"""Reads container logs in the CRI k8s-file format conmon writes: ``TIMESTAMP STREAM P|F MESSAGE``.

Owns parsing, ``tail`` and ``follow`` (which survives conmon's size-based truncation and ends
when the container's conmon exits). It must not write or rotate logs: conmon does that.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from shoal.runtime.protocol import LogLine

__all__ = ["parse_line", "read_log"]

_FOLLOW_INTERVAL = 0.1


def parse_line(raw: str) -> LogLine | None:
    """One k8s-file line as a LogLine, or None if it is not in that format."""
    parts = raw.rstrip("\n").split(" ", 3)
    if len(parts) < 3 or parts[1] not in ("stdout", "stderr") or parts[2] not in ("P", "F"):
        return None
    message = parts[3] if len(parts) == 4 else ""
    return LogLine(timestamp=parts[0], stream=parts[1], partial=parts[2] == "P", message=message)


def _lines(chunk: str) -> list[LogLine]:
    return [line for raw in chunk.splitlines() if (line := parse_line(raw)) is not None]


async def read_log(path: Path, tail: int | None, follow: bool, alive: Callable[[], bool]) -> AsyncIterator[LogLine]:
    """The log's lines (the last ``tail`` if given); with ``follow``, new lines until ``alive()`` is false."""
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - held across awaits
    except FileNotFoundError:
        return
    with f:
        if tail is None:
            initial: list[LogLine] | deque[LogLine] = _lines(f.read())
        else:
            initial = deque(_lines(f.read()), maxlen=max(tail, 0))
        for line in initial:
            yield line
        pending = ""
        while follow:
            chunk = f.read()
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition("\n")
                for line in _lines(complete):
                    yield line
                continue
            if path.exists() and path.stat().st_size < f.tell():
                f.seek(0)  # conmon truncated the log when it reached its size limit
                pending = ""
                continue
            if not alive():
                for line in _lines(pending + f.read()):
                    yield line
                return
            await asyncio.sleep(_FOLLOW_INTERVAL)
