"""A private "host" network namespace for pod-networking tests, so the bridge, the nftables service
table, routes, ip_forward and bridge-netfilter sysctls that shoal sets up never touch this machine's
own networking: the server and registry stay on this machine's loopback and are reachable inside
the namespace on the same 127.0.0.1 ports through an in-process TCP forwarder. Everything is
removed afterwards (bridge and nft table explicitly, then the namespace), even on failure."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


class Forwarder:
    """Listens on ADDRESS:PORT (default 127.0.0.1) inside a network namespace; each connection is
    relayed to 127.0.0.1:PORT of this process's own namespace."""

    def __init__(self, netns: Path, ports: list[int], address: str = "127.0.0.1") -> None:
        self.ports = ports
        self.listeners: list[socket.socket] = []
        self.conns: list[socket.socket] = []
        self.closing = False
        made: list[BaseException] = []

        def listen() -> None:  # setns changes only this short-lived thread
            try:
                with open(netns, "rb") as f:
                    _setns(f.fileno())
                for port in ports:
                    sock = socket.socket()
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((address, port))
                    sock.listen(64)
                    self.listeners.append(sock)
            except BaseException as exc:
                made.append(exc)

        thread = threading.Thread(target=listen)
        thread.start()
        thread.join()
        if made:
            self.close()
            raise made[0]
        for sock, port in zip(self.listeners, ports, strict=True):
            threading.Thread(target=self._accept, args=(sock, port), daemon=True).start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self.closing:
            try:
                inner, _ = listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            for sock in (inner, outer):  # relay each write at once: Nagle + delayed ACK would add 40 ms
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns += [inner, outer]
            threading.Thread(target=self._pump, args=(inner, outer), daemon=True).start()
            threading.Thread(target=self._pump, args=(outer, inner), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closing = True
        for sock in [*self.listeners, *self.conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def in_netns(netns: Path, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, timeout=timeout)


def make_netns(path: Path) -> Path:
    """A new network namespace bind-mounted at ``path``, loopback up."""
    path.touch()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True, timeout=30)
    in_netns(path, "ip", "link", "set", "lo", "up").check_returncode()
    return path


def remove_netns(path: Path, *links: str) -> None:
    """Delete ``links`` and shoal's nft table in the namespace, then unmount it (its veths go with it)."""
    in_netns(path, "nft", "delete", "table", "ip", "shoal")
    for link in links:
        in_netns(path, "ip", "link", "delete", link)
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def host_netns(path: Path, bridge: str) -> Iterator[Path]:
    """A new network namespace at ``path``; on exit ``bridge`` and shoal's nft table in it are
    deleted and the namespace is unmounted."""
    try:
        yield make_netns(path)
    finally:
        remove_netns(path, bridge)
