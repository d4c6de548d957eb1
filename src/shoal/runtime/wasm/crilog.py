"""Writes a wasm instance's stdout and stderr as CRI k8s-file lines, the format conmon writes for OCI.

``TIMESTAMP STREAM P|F MESSAGE``: a chunk's complete lines are ``F``, a trailing piece without its
newline is ``P`` (the reader joins them), so ``shoal logs`` reads both runtimes alike
(``shoal.runtime.oci.logs``). Owns only the formatting and the file; it must not decide what to log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["CriLogWriter", "format_chunk"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def format_chunk(stream: str, chunk: bytes, now: Callable[[], str] = _now) -> str:
    """The k8s-file lines for one write of ``chunk`` to ``stream`` ("stdout" or "stderr")."""
    text = chunk.decode("utf-8", errors="replace")
    if not text:
        return ""
    stamp = now()
    pieces = text.split("\n")
    out = [f"{stamp} {stream} F {piece}\n" for piece in pieces[:-1]]
    if pieces[-1]:
        out.append(f"{stamp} {stream} P {pieces[-1]}\n")
    return "".join(out)


class CriLogWriter:
    """Appends k8s-file lines to one log file; safe to call from the instance's thread and the host's."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the instance's life
        self._lock = threading.Lock()

    def write(self, stream: str, chunk: bytes) -> None:
        lines = format_chunk(stream, chunk)
        if lines:
            with self._lock:
                if not self._file.closed:
                    self._file.write(lines)
                    self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
