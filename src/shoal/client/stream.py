"""Streams to and from pods through the server: ``logs`` (text) and ``exec`` (framed), and the exec framing.

An exec stream is a sequence of frames, each a 5-byte header (one byte channel, four bytes
big-endian payload length) and the payload: channel 1 is the command's stdout, 2 its stderr,
3 the final result as JSON ``{"exitCode": N, "message": "..."}`` (``exitCode`` -1 with a message
when the command could not run). The agent encodes these frames, the server relays them unchanged
and the CLI decodes them. An interactive exec (``ExecSession``) opens with a streaming POST whose
response is that output and whose ``X-Shoal-Exec-Session`` header names the session; the user's
input goes in separate POSTs of frames on channel 4 (stdin bytes), 5 (window size, JSON
``{"rows": R, "cols": C}``) and 6 (end of stdin, empty). A forwarded TCP connection
(``PortForwardStream``) works the same way: the pod's bytes on channel 1, the user's on 4, their
half-close on 6. ``push_archive_to_node`` uploads an image archive for a node to load. This module
must not print or exit; it raises ``ApiError`` and ``ServerUnreachable`` like the rest of the client.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import TracebackType

import httpx
import msgspec

from shoal.client.config import ClientConfig
from shoal.client.errors import ApiError
from shoal.client.transport import client_options, unreachable

__all__ = [
    "EXEC_MEDIA_TYPE",
    "EXEC_SESSION_HEADER",
    "Channel",
    "ExecFrame",
    "ExecSession",
    "FrameDecoder",
    "FramingError",
    "PortForwardStream",
    "encode_frame",
    "encode_resize",
    "encode_result",
    "exec_in_pod",
    "pod_logs",
    "push_archive_to_node",
]

EXEC_MEDIA_TYPE = "application/x-shoal-exec"
EXEC_SESSION_HEADER = "X-Shoal-Exec-Session"
_HEADER = struct.Struct(">BI")
MAX_FRAME = 1 << 20


class Channel(IntEnum):
    STDOUT = 1
    STDERR = 2
    RESULT = 3
    STDIN = 4
    RESIZE = 5
    CLOSE_STDIN = 6


class FramingError(ValueError):
    """The exec stream is corrupt (unknown channel, oversized frame or cut short)."""


@dataclass(frozen=True, slots=True)
class ExecFrame:
    channel: Channel
    payload: bytes

    def result(self) -> tuple[int, str]:
        """(exit code, message) of a RESULT frame."""
        try:
            doc = msgspec.json.decode(self.payload)
            code = doc["exitCode"]
            if not isinstance(code, int):
                raise TypeError("exitCode is not an integer")
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise FramingError(f"exec result frame is not {{\"exitCode\": N}}: {exc}") from None
        return code, str(doc.get("message") or "")

    def size(self) -> tuple[int, int]:
        """(rows, cols) of a RESIZE frame."""
        try:
            doc = msgspec.json.decode(self.payload)
            rows, cols = doc["rows"], doc["cols"]
            if not all(isinstance(n, int) and 0 < n < 65536 for n in (rows, cols)):
                raise TypeError("rows and cols must be integers from 1 to 65535")
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise FramingError(f'resize frame is not {{"rows": R, "cols": C}}: {exc}') from None
        return rows, cols


def encode_frame(channel: Channel, payload: bytes) -> bytes:
    """One frame; payloads past MAX_FRAME are split into several frames of the same channel."""
    if len(payload) <= MAX_FRAME:
        return _HEADER.pack(channel, len(payload)) + payload
    return b"".join(_HEADER.pack(channel, len(part)) + part
                    for part in (payload[i:i + MAX_FRAME] for i in range(0, len(payload), MAX_FRAME)))


def encode_result(exit_code: int, message: str = "") -> bytes:
    return encode_frame(Channel.RESULT, msgspec.json.encode({"exitCode": exit_code, "message": message}))


def encode_resize(rows: int, cols: int) -> bytes:
    return encode_frame(Channel.RESIZE, msgspec.json.encode({"rows": rows, "cols": cols}))


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, get the complete frames back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[ExecFrame]:
        self._buffer += data
        frames: list[ExecFrame] = []
        while len(self._buffer) >= _HEADER.size:
            raw_channel, length = _HEADER.unpack_from(self._buffer)
            try:
                channel = Channel(raw_channel)
            except ValueError:
                raise FramingError(f"exec stream has a frame on unknown channel {raw_channel}") from None
            if length > MAX_FRAME:
                raise FramingError(f"exec stream frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(ExecFrame(channel, bytes(self._buffer[_HEADER.size:end])))
            del self._buffer[:end]
        return frames

    def close(self) -> None:
        """Raise if the stream stopped in the middle of a frame."""
        if self._buffer:
            raise FramingError(f"exec stream ended inside a frame ({len(self._buffer)} bytes left over)")


def _pod_path(namespace: str, pod: str, sub: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{pod}/{sub}"


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()
        raise ApiError.from_body(response.status_code, response.content)


def pod_logs(config: ClientConfig, namespace: str, pod: str, *, container: str = "", follow: bool = False,
             tail: int | None = None, previous: bool = False, timeout: float = 30.0) -> Iterator[bytes]:
    """The pod container's log as it arrives (text chunks); with ``follow`` until the container ends."""
    params: dict[str, str] = {}
    if container:
        params["container"] = container
    if follow:
        params["follow"] = "1"
    if tail is not None:
        params["tailLines"] = str(tail)
    if previous:
        params["previous"] = "1"
    read = None if follow else timeout
    try:
        with httpx.Client(**client_options(config, timeout)) as http, http.stream(
                "GET", _pod_path(namespace, pod, "log"), params=params,
                timeout=httpx.Timeout(timeout, read=read)) as response:
            _raise_for(response)
            yield from response.iter_bytes()
    except httpx.TransportError as exc:
        raise unreachable(config, exc) from None


def exec_in_pod(config: ClientConfig, namespace: str, pod: str, command: Sequence[str], *, container: str = "",
                timeout: float = 300.0) -> Iterator[ExecFrame]:
    """Run ``command`` in the pod's container; its stdout/stderr frames, then one RESULT frame."""
    params: list[tuple[str, str | int | float | bool | None]] = [("command", part) for part in command]
    if container:
        params.append(("container", container))
    params.append(("timeoutSeconds", str(int(timeout))))
    decoder = FrameDecoder()
    try:
        with httpx.Client(**client_options(config, 30.0)) as http, http.stream(
                "POST", _pod_path(namespace, pod, "exec"), params=params,
                timeout=httpx.Timeout(30.0, read=timeout + 30.0)) as response:
            _raise_for(response)
            for chunk in response.iter_bytes():
                yield from decoder.feed(chunk)
    except httpx.TransportError as exc:
        raise unreachable(config, exc) from None
    decoder.close()


class ExecSession:
    """An interactive exec: ``frames`` is the output (then one RESULT frame); ``send``, ``close_stdin``
    and ``resize`` feed the process and may be called from another thread while ``frames`` runs."""

    def __init__(self, config: ClientConfig, namespace: str, pod: str, command: Sequence[str], *,
                 container: str = "", stdin: bool = False, tty: bool = False,
                 size: tuple[int, int] | None = None) -> None:
        self._config = config
        self._path = _pod_path(namespace, pod, "exec/stream")
        params: list[tuple[str, str | int | float | bool | None]] = [("command", part) for part in command]
        if container:
            params.append(("container", container))
        params += [("stdin", "1" if stdin else "0"), ("tty", "1" if tty else "0")]
        if size is not None:
            params += [("rows", str(size[0])), ("cols", str(size[1]))]
        self._params = params
        self._stack = contextlib.ExitStack()
        self._response: httpx.Response | None = None
        self._input: httpx.Client | None = None
        self.id = ""

    def __enter__(self) -> ExecSession:
        try:
            output = self._stack.enter_context(httpx.Client(**client_options(self._config, 30.0)))
            response = self._stack.enter_context(output.stream(
                "POST", self._path, params=self._params, timeout=httpx.Timeout(30.0, read=None)))
            _raise_for(response)
            self.id = response.headers.get(EXEC_SESSION_HEADER, "")
            if not self.id:
                raise ApiError(502, "BadGateway", f"the server answered without an {EXEC_SESSION_HEADER} header")
            self._response = response
            self._input = self._stack.enter_context(httpx.Client(**client_options(self._config, 30.0)))
        except httpx.TransportError as exc:
            self._stack.close()
            raise unreachable(self._config, exc) from None
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stack.close()

    def frames(self) -> Iterator[ExecFrame]:
        assert self._response is not None, "use ExecSession in a with block"
        decoder = FrameDecoder()
        try:
            for chunk in self._response.iter_bytes():
                yield from decoder.feed(chunk)
        except httpx.TransportError as exc:
            raise unreachable(self._config, exc) from None
        decoder.close()

    def _post(self, frames: bytes) -> bool:
        assert self._input is not None, "use ExecSession in a with block"
        try:
            response = self._input.post(f"{self._path}/{self.id}", content=frames,
                                        headers={"Content-Type": EXEC_MEDIA_TYPE})
        except httpx.TransportError as exc:
            raise unreachable(self._config, exc) from None
        if response.status_code == 404:
            return False  # the session ended (the process exited or the node went away)
        _raise_for(response)
        return True

    def send(self, data: bytes) -> bool:
        """Write ``data`` to the process's stdin; False once the session has ended."""
        return self._post(encode_frame(Channel.STDIN, data))

    def close_stdin(self) -> bool:
        return self._post(encode_frame(Channel.CLOSE_STDIN, b""))

    def resize(self, rows: int, cols: int) -> bool:
        return self._post(encode_resize(rows, cols))


class PortForwardStream(ExecSession):
    """One TCP connection to ``port`` inside the pod: ``frames`` is what the pod sends (then one RESULT
    frame when it closed); ``send`` and ``close_stdin`` (half-close) carry the user's side."""

    def __init__(self, config: ClientConfig, namespace: str, pod: str, port: int) -> None:
        super().__init__(config, namespace, pod, ())
        self._path = _pod_path(namespace, pod, "portforward")
        self._params = [("port", str(port))]


def push_archive_to_node(config: ClientConfig, node: str, archive: Path, image: str = "",
                         progress: Callable[[int, int], None] | None = None,
                         timeout: float = 3600.0) -> list[str]:
    """Upload ``archive`` (``shoal image save``) for ``node`` to load; the image names it loaded."""
    total = archive.stat().st_size

    def chunks() -> Iterator[bytes]:
        sent = 0
        with open(archive, "rb") as src:
            while chunk := src.read(1 << 20):
                yield chunk
                sent += len(chunk)
                if progress is not None:
                    progress(sent, total)

    params = {"image": image} if image else {}
    last: dict[str, object] = {}
    try:
        with httpx.Client(**client_options(config, 30.0)) as http, http.stream(
                "POST", f"/api/v1/nodes/{node}/images", params=params, content=chunks(),
                headers={"Content-Type": "application/x-tar", "Content-Length": str(total)},
                timeout=httpx.Timeout(30.0, read=timeout, write=timeout)) as response:
            _raise_for(response)
            for line in response.iter_lines():
                if line.strip():
                    last = msgspec.json.decode(line)
    except httpx.TransportError as exc:
        raise unreachable(config, exc) from None
    except msgspec.DecodeError:
        raise ApiError(502, "BadGateway", f"node {node} answered the image push with something not JSON") from None
    if "error" in last:
        raise ApiError(500, "InternalError", f"node {node}: {last['error']}")
    loaded = last.get("loaded")
    if not isinstance(loaded, list):
        raise ApiError(502, "BadGateway", f"node {node} did not say which images it loaded (the node or server "
                                          "went away mid-push?)")
    return [str(name) for name in loaded]
