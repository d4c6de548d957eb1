"""Cluster DNS on a node: local answers on the wire and the UDP/TCP server.

The zone itself (records, ``build_zone``, ``lookup``) is ``shoal.net.dnszone``; ``answer`` (pure)
answers a query from a zone on the wire (``shoal.net.dnswire`` packs and parses). ``DnsServer`` serves UDP and
TCP on one address in the caller's event loop: local names are answered synchronously (no await),
everything else is forwarded to the upstream resolvers with a timeout, SERVFAIL when none answers.
Names under the cluster domain are never forwarded. This module never reads the API server; the
zone is handed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from shoal.net.dnswire import WireError, error_response, parse_query, response
from shoal.net.dnszone import (
    DEFAULT_DOMAIN,
    DEFAULT_TTL,
    Lookup,
    Record,
    RecordType,
    Srv,
    Zone,
    build_zone,
    dashed,
    lookup,
)

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TTL", "DnsServer", "Lookup", "Record", "RecordType", "Srv", "Upstream",
           "Zone", "answer", "build_zone", "dashed", "lookup"]

log = logging.getLogger("shoal.net.dns")
_UDP_MAX = 512
_MAX_INFLIGHT = 256
_CACHE_ENTRIES = 4096
_TCP_IDLE_SECONDS = 10.0
_MAX_TCP_CONNECTIONS = 64
_IP_FREEBIND = 15  # linux/in.h: bind to the bridge's address before the bridge exists
Upstream = tuple[str, int]


def _records(records: Iterable[Record], owner: str | None = None) -> list[tuple[str, str, object]]:
    return [(owner if owner is not None else r.name, r.type.value, r.value) for r in records]


def answer(zone: Zone, wire: bytes, *, tcp: bool = False) -> bytes | None:
    """The response to query ``wire`` when the zone owns the name (or the query is bad); None: forward it.
    Over UDP, responses larger than the client takes (512 bytes, or its EDNS size) are truncated with TC
    set, so the client retries over TCP."""
    try:
        query = parse_query(wire)
    except WireError:
        return error_response(wire, "FORMERR")
    if query.opcode != 0:
        return error_response(wire, "NOTIMP")
    found = lookup(zone, query.qname, query.type_name)
    if found is None:
        return None
    limit = 65535 if tcp else min(max(_UDP_MAX, query.payload or _UDP_MAX), 65535)
    return response(query, found.rcode, _records(found.answers, query.qname), _records(found.authority),
                    _records(found.additional), ttl=DEFAULT_TTL, limit=limit)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # 3.11's selector transport is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = self.server.local(data, tcp=False)
        if reply is None:
            self.server.spawn(self._forward(data, addr))
        elif self.transport is not None:
            self.transport.sendto(reply, addr)

    async def _forward(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = await self.server.forward(data, tcp=False)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


@dataclass
class DnsServer:
    """Cluster DNS on ``host:port`` (UDP and TCP); ``zone()`` is read on every query, ``upstreams()`` on
    every forwarded one. Bind with ``start``; ``close`` stops listening and cancels forwards in flight."""

    zone: Callable[[], Zone]
    upstreams: Callable[[], Sequence[Upstream]]
    timeout: float = 2.0  # per upstream
    _udp: asyncio.DatagramTransport | None = None
    _tcp: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _cache: dict[tuple[bytes, bool], bytes | None] = field(default_factory=dict)
    _cached_zone: Zone | None = None
    address: tuple[str, int] = ("", 0)

    def local(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """``answer`` with a cache: the same query (less its id) against the same zone gets the same bytes."""
        zone = self.zone()
        if zone is not self._cached_zone or len(self._cache) >= _CACHE_ENTRIES:
            self._cache.clear()
            self._cached_zone = zone
        key = (wire[2:], tcp)
        if key in self._cache:
            body = self._cache[key]
            return None if body is None else wire[:2] + body
        try:
            reply = answer(zone, wire, tcp=tcp)
        except ValueError as exc:  # a zone value that does not pack (WireError is one)
            log.warning("cluster DNS: cannot answer a query: %s", exc)
            return error_response(wire, "SERVFAIL")
        if len(wire) >= 12:
            self._cache[key] = None if reply is None else reply[2:]
        return reply

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if len(self._tasks) >= _MAX_INFLIGHT:
            coro.close()
            return  # the client retries; a flood must not grow memory without bound
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (the address need not exist yet: IP_FREEBIND)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            for sock in (udp, tcp):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
                sock.setblocking(False)
                sock.bind((host, port or udp.getsockname()[1]))  # port 0: TCP takes the port UDP got
            tcp.listen(64)
        except OSError as exc:
            udp.close()
            tcp.close()
            raise OSError(exc.errno, f"cluster DNS cannot listen on {host}:{port}: {exc.strerror} (is another DNS "
                                     f"server bound to this address or to 0.0.0.0:{port}?)") from None
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
        self._udp = transport
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        self.address = (host, int(udp.getsockname()[1]))

    async def close(self) -> None:
        for listener in (self._udp, self._tcp):
            if listener is not None:
                listener.close()
        self._udp = self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._tasks) >= _MAX_TCP_CONNECTIONS + _MAX_INFLIGHT or task is None:
            writer.close()
            return
        self._tasks.add(task)
        try:
            while True:
                async with asyncio.timeout(_TCP_IDLE_SECONDS):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    wire = await reader.readexactly(size)
                reply = self.local(wire, tcp=True)
                if reply is None:
                    reply = await self.forward(wire, tcp=True)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()

    async def forward(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The first upstream's answer (with the client's id), or SERVFAIL when none answers in time."""
        if len(wire) < 12:
            return None  # not even a header: dropped, never forwarded
        ident = wire[:2]
        for upstream in list(self.upstreams())[:3]:
            if upstream == self.address:
                continue  # never forward to ourselves
            query_id = random.getrandbits(16).to_bytes(2, "big")
            try:
                async with asyncio.timeout(self.timeout):
                    reply = await (_ask_tcp if tcp else _ask_udp)(upstream, query_id + wire[2:])
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                log.info("cluster DNS: upstream %s:%d did not answer: %s", *upstream, exc or "timed out")
                continue
            if len(reply) >= 12 and reply[:2] == query_id:
                return ident + reply[2:]
        return error_response(wire, "SERVFAIL")


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, ident: bytes) -> None:
        self.ident = ident
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if data[:2] == self.ident and not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _ask_udp(upstream: Upstream, wire: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: _Reply(wire[:2]), remote_addr=upstream)
    try:
        transport.sendto(wire)
        return await protocol.done
    finally:
        transport.close()


async def _ask_tcp(upstream: Upstream, wire: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()
