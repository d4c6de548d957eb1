"""The input side of `shoal exec -i/-t`: what the user types goes to the session in order, EOF ends
stdin once, a window change sends the new size, and a session that ended stops the reading."""

from __future__ import annotations

import os
import threading

import pytest

from shoal.cli import logs


class _Session:
    def __init__(self, alive_for: int = 100) -> None:
        self.sent: list[tuple[str, object]] = []
        self._alive_for = alive_for

    def _record(self, what: str, value: object) -> bool:
        self.sent.append((what, value))
        return len(self.sent) < self._alive_for

    def send(self, data: bytes) -> bool:
        return self._record("stdin", data)

    def close_stdin(self) -> bool:
        return self._record("eof", None)

    def resize(self, rows: int, cols: int) -> bool:
        return self._record("resize", (rows, cols))


def _run(session: _Session, chunks: list[bytes], terminal: bool, wake_first: bool = False) -> None:
    stdin_read, stdin_write = os.pipe()
    wake_read, wake_write = os.pipe()
    done = threading.Event()
    try:
        if wake_first:
            os.write(wake_write, b"w")
        feeder = threading.Thread(target=logs._feed, args=(session, stdin_read, wake_read, done, terminal))
        feeder.start()
        for chunk in chunks:
            os.write(stdin_write, chunk)
        os.close(stdin_write)
        stdin_write = -1
        feeder.join(timeout=5 if not terminal else 0.5)
        done.set()
        os.write(wake_write, b"x")
        feeder.join(timeout=5)
        assert not feeder.is_alive()
    finally:
        for fd in (stdin_read, wake_read, wake_write, stdin_write):
            if fd >= 0:
                os.close(fd)


def test_stdin_then_eof_without_a_terminal() -> None:
    session = _Session()
    _run(session, [b"hello\n"], terminal=False)
    assert b"".join(v for w, v in session.sent if w == "stdin" and isinstance(v, bytes)) == b"hello\n"
    assert session.sent[-1] == ("eof", None) and [w for w, _ in session.sent].count("eof") == 1


def test_window_changes_send_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_window_size", lambda: (40, 120))
    session = _Session()
    _run(session, [], terminal=True, wake_first=True)
    assert ("resize", (40, 120)) in session.sent and ("eof", None) in session.sent


def test_an_ended_session_stops_the_reading() -> None:
    session = _Session(alive_for=1)
    _run(session, [b"a"], terminal=False)
    assert session.sent == [("stdin", b"a")]
