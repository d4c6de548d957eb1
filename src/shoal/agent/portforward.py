"""The agent's end of a forwarded connection: a TCP connection inside a pod's network namespace.

``connect_in_pod`` makes the socket in a short-lived thread of its own that has joined the pod's
network namespace (``setns`` into ``/proc/PID/ns/net`` of one of the pod's processes); the socket
keeps that namespace after the thread ends, and no other thread of the agent ever leaves its own.
``relay`` turns the connection into the answer of a tunnel request: what the pod sends as frames on
channel 1 of ``shoal.client.stream`` and a result frame when the pod's side closed, while the
user's bytes (channel 4) and half-close (channel 6) are pulled from the session's input stream, as
an interactive exec's are. It must not decide which pod or port is allowed; the server did.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import threading
from collections.abc import AsyncGenerator

import httpx

from shoal.client.stream import Channel, FrameDecoder, FramingError, encode_frame, encode_result

__all__ = ["PortUnreachable", "connect_in_pod", "relay"]

log = logging.getLogger("shoal.agent.portforward")
CLONE_NEWNET = 0x40000000
CONNECT_SECONDS = 10.0
_READ_BYTES = 64 << 10


class PortUnreachable(Exception):
    """Nothing accepts connections on the port inside the pod (or its namespace is gone)."""


def _connect_blocking(pid: int, port: int, timeout: float) -> socket.socket:
    """Run in a thread that exists only for this: it joins the pod's network namespace and connects."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise PortUnreachable(f"the pod's network namespace is gone (process {pid}: {exc.strerror})") from None
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise PortUnreachable(f"cannot enter the pod's network namespace: {os.strerror(errno)}")
    finally:
        os.close(fd)
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        raise PortUnreachable(f"nothing listens on port {port} in the pod (connection refused)") from None
    except TimeoutError:
        raise PortUnreachable(f"connecting to port {port} in the pod timed out after {timeout:g}s") from None
    except OSError as exc:
        raise PortUnreachable(f"connecting to port {port} in the pod failed: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def connect_in_pod(pid: int, port: int, timeout: float = CONNECT_SECONDS) -> socket.socket:
    """A connected, non-blocking socket to 127.0.0.1:``port`` in the network namespace of process ``pid``."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[socket.socket] = loop.create_future()

    def settle(sock: socket.socket | None, error: BaseException | None) -> None:
        if made.cancelled():
            if sock is not None:
                sock.close()
        elif error is not None:
            made.set_exception(error)
        else:
            made.set_result(sock)  # type: ignore[arg-type]

    def work() -> None:  # setns changes only this thread, which ends right after
        try:
            sock = _connect_blocking(pid, port, timeout)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, sock, None)

    threading.Thread(target=work, name=f"netns-connect-{pid}-{port}", daemon=True).start()
    return await made


async def relay(http: httpx.AsyncClient, input_path: str, sock: socket.socket) -> AsyncGenerator[bytes, None]:
    """The pod's bytes as frames until it closes (then a result frame); the user's bytes go in alongside."""
    reader, writer = await asyncio.open_connection(sock=sock)
    pump = asyncio.create_task(_pump_input(http, input_path, writer))
    try:
        while True:
            try:
                data = await reader.read(_READ_BYTES)
            except OSError as exc:
                yield encode_result(-1, f"the connection in the pod failed: {exc.strerror or exc}")
                return
            if not data:
                break
            yield encode_frame(Channel.STDOUT, data)
        yield encode_result(0)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _pump_input(http: httpx.AsyncClient, input_path: str, writer: asyncio.StreamWriter) -> None:
    """Write what the user sends into the connection; their half-close shuts our writing side."""
    decoder = FrameDecoder()
    try:
        async with http.stream("GET", input_path, timeout=httpx.Timeout(10.0, read=None)) as response:
            if response.status_code != 200:
                await response.aread()
                log.info("port-forward: no input from %s: HTTP %d", input_path, response.status_code)
                return
            async for chunk in response.aiter_bytes():
                for frame in decoder.feed(chunk):
                    if frame.channel is Channel.STDIN:
                        writer.write(frame.payload)
                        await writer.drain()
                    elif frame.channel is Channel.CLOSE_STDIN and writer.can_write_eof():
                        writer.write_eof()
    except (httpx.HTTPError, FramingError, OSError) as exc:
        log.info("port-forward: input from %s stopped: %s", input_path, str(exc) or type(exc).__name__)
