"""One probe check (exec, tcpSocket or httpGet) against one container, as (ok, what happened).

exec runs through the driver's exec. tcpSocket and httpGet connect from inside the pod's network
namespace: a short-lived thread enters ``/proc/PID/ns/net`` (setns), creates the socket there and
exits, and the agent's event loop then connects and talks over that socket (a socket stays in the
namespace it was made in), so the agent itself never leaves its own namespace and no helper
process is spawned. It must not decide what a result means (``probes`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import socket
import ssl
import threading
from dataclasses import dataclass, field

from shoal.model.pod import HTTPGetAction, Probe, TCPSocketAction
from shoal.runtime.protocol import Driver, DriverError

__all__ = ["ProbeTarget", "resolve_port", "run_check", "socket_in_netns"]

_CLONE_NEWNET = 0x40000000
_READ_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    container_id: str
    pid: int  # a process inside the pod's network namespace; 0 = the agent's own namespace
    host: str = "127.0.0.1"  # the address tcp/http probes use when the probe names none (the pod IP)
    ports: dict[str, int] = field(default_factory=dict)  # the container's named ports


def resolve_port(port: int | str, ports: dict[str, int]) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if port in ports:
        return ports[port]
    raise ValueError(f'probe port "{port}" is not a number or a named port of the container '
                     f"(named ports: {', '.join(sorted(ports)) or 'none'})")


def _enter_and_make(pid: int, family: int) -> socket.socket:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter the network namespace of pid {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)
    return socket.socket(family, socket.SOCK_STREAM)


async def socket_in_netns(pid: int, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that lives in the network namespace of ``pid`` (0: the agent's own)."""
    if pid <= 0 or pid == os.getpid():
        return socket.socket(family, socket.SOCK_STREAM)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(sock: socket.socket | None, exc: BaseException | None) -> None:
        if done.done():
            if sock is not None:
                sock.close()
        elif exc is not None:
            done.set_exception(exc)
        elif sock is not None:
            done.set_result(sock)

    def body() -> None:  # this thread ends inside the pod's namespace: it is never reused
        try:
            made = _enter_and_make(pid, family)
        except BaseException as exc:  # delivered to the awaiting coroutine
            loop.call_soon_threadsafe(deliver, None, exc)
        else:
            loop.call_soon_threadsafe(deliver, made, None)

    threading.Thread(target=body, name=f"netns-{pid}", daemon=True).start()
    return await done


async def _connect(target: ProbeTarget, host: str, port: int) -> socket.socket:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"cannot resolve {host}") from None
        address = ipaddress.ip_address(infos[0][4][0])
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = await socket_in_netns(target.pid, family)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
    except OSError as exc:
        sock.close()
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(exc.errno, f"connect to {host}:{port}: {why}") from None
    except BaseException:
        sock.close()
        raise
    return sock


async def _tcp(action: TCPSocketAction, target: ProbeTarget) -> tuple[bool, str]:
    host, port = action.host or target.host, resolve_port(action.port, target.ports)
    sock = await _connect(target, host, port)
    sock.close()
    return True, f"connected to {host}:{port}"


async def _http(action: HTTPGetAction, target: ProbeTarget) -> tuple[bool, str]:
    host, port = action.host or target.host, resolve_port(action.port, target.ports)
    path = action.path if action.path.startswith("/") else f"/{action.path}"
    sock = await _connect(target, host, port)
    tls: ssl.SSLContext | None = None
    if action.scheme.upper() == "HTTPS":  # like the kubelet: TLS without verifying the certificate
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(sock=sock, ssl=tls, server_hostname=host if tls else None)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: shoal-probe\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n".encode("latin-1"))
        await writer.drain()
        line = (await reader.readline())[:_READ_LIMIT].decode("latin-1").strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"GET {host}:{port}{path}: not an HTTP response ({line[:80]!r})"
    code = int(parts[1])
    return 200 <= code < 400, f"GET {host}:{port}{path}: HTTP {code}"


async def run_check(probe: Probe, target: ProbeTarget, driver: Driver) -> tuple[bool, str]:
    """Run the probe once within its timeout; never raises for a failing container."""
    timeout = float(max(probe.timeout_seconds, 1))
    try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        if probe.exec is not None:
            argv = probe.exec.command
            async with asyncio.timeout(timeout + 1):
                result = await driver.exec(target.container_id, argv, timeout)
            output = (result.stderr or result.stdout).decode(errors="replace").strip()[:200]
            detail = f"{' '.join(argv)!r} exited with {result.exit_code}" + (f": {output}" if output else "")
            return result.exit_code == 0, detail
        async with asyncio.timeout(timeout):
            if probe.tcp_socket is not None:
                return await _tcp(probe.tcp_socket, target)
            if probe.http_get is not None:
                return await _http(probe.http_get, target)
        return False, "the probe has no exec, tcpSocket or httpGet action"
    except TimeoutError:
        return False, f"timed out after {timeout:g}s"
    except (OSError, DriverError, ValueError, ssl.SSLError) as exc:
        return False, str(exc) or type(exc).__name__
