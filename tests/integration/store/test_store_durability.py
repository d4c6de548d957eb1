"""An acknowledged write survives ``kill -9`` of the process that made it."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from storetest_support import run

from shoal.model import ObjectMeta, Pod
from shoal.store import EventType, SqliteStore

CHILD = Path(__file__).with_name("durability_child.py")


def _read_acks(process: subprocess.Popen[str], want: int, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    buffer = ""
    while len(lines) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        chunk = os.read(fd, 65536).decode()
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split("\n")
        lines.extend(complete)
    return lines


def test_acknowledged_creates_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "shoal.db"
    process = subprocess.Popen([sys.executable, str(CHILD), str(path), "1000", "0.005"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _read_acks(process, 301, timeout=60)  # "ready" + 300 acks
        assert process.poll() is None, f"child ended before the kill: {process.stderr.read() if process.stderr else ''}"
        process.send_signal(signal.SIGKILL)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    acked = [line.split() for line in [*lines, *rest.splitlines()] if line.startswith("pod-")]
    assert lines[0] == "ready"
    assert 300 <= len(acked) < 1000, "the kill must land mid-way"

    async def body() -> None:
        store = await SqliteStore.open(path)
        try:
            for name, revision in acked:
                stored = await store.get("Pod", "default", name)
                assert stored.metadata.resource_version == revision
            highest = max(int(revision) for _, revision in acked)
            assert store.revision >= highest
            after = await store.create(Pod(metadata=ObjectMeta(name="after-restart")))
            assert int(after.metadata.resource_version) == store.revision > highest
            stream = store.watch("Pod", from_revision=highest - 10)
            replayed = [await stream.__anext__() for _ in range(10)]
            assert [event.revision for event in replayed] == list(range(highest - 9, highest + 1))
            assert all(event.type is EventType.ADDED for event in replayed)
            await stream.aclose()
        finally:
            await store.close()

    run(body)
