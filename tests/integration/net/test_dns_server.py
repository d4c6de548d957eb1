"""The node's cluster DNS for real, on loopback: ``NodeDns`` listens on a 127.x address and busybox
``nslookup`` (UDP) and dnspython (TCP) ask it for service, SRV and PTR names; other names go to a fake
upstream resolver on another loopback address, which must never see a name under the cluster domain;
a silent upstream turns into SERVFAIL within the forwarding timeout."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from shoal.agent.dns import NodeDns

BUSYBOX = "/bin/busybox"
OUTSIDE_IP = "192.0.2.80"


def loopback() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def service(name: str, cluster_ip: str) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}]}}


class FakeUpstream(asyncio.DatagramProtocol):
    """Answers every A query with OUTSIDE_IP (UDP and TCP) and remembers the names it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.received = 0  # messages of any shape
        self.transport: asyncio.DatagramTransport | None = None

    def reply(self, wire: bytes) -> bytes:
        self.received += 1
        query = dns.message.from_wire(wire)
        name = query.question[0].name
        self.asked.append(name.to_text().lower())
        response = dns.message.make_response(query, recursion_available=True)
        if query.question[0].rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", OUTSIDE_IP))
        return response.to_wire()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.reply(data), addr)

    async def serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            out = self.reply(await reader.readexactly(size))
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def upstream_on(address: str) -> AsyncIterator[tuple[FakeUpstream, int]]:
    fake = FakeUpstream()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: fake, local_addr=(address, 0))
    port = transport.get_extra_info("sockname")[1]
    tcp = await asyncio.start_server(fake.serve_tcp, address, port)
    try:
        yield fake, port
    finally:
        transport.close()
        tcp.close()
        await tcp.wait_closed()


@contextlib.asynccontextmanager
async def node_dns(node: NodeDns) -> AsyncIterator[tuple[str, int]]:
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    try:
        async with asyncio.timeout(10):
            while node.serving is None:
                await asyncio.sleep(0.01)
        yield node.serving
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert node.serving is None


async def nslookup(server: tuple[str, int], *args: str) -> tuple[int, str]:
    """busybox nslookup, as a pod would run it (UDP); (exit code, output)."""
    proc = await asyncio.create_subprocess_exec(BUSYBOX, "timeout", "10", BUSYBOX, "nslookup", f"-port={server[1]}",
                                                *args, server[0], stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, out.decode()


async def ask_tcp(server: tuple[str, int], name: str, rtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.tcp(dns.message.make_query(name, rtype), server[0], timeout=5, port=server[1])


async def ask_udp(server: tuple[str, int], name: str, rtype: str = "A", timeout: float = 5) -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rtype), server[0], timeout=timeout, port=server[1])


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer for r in rrset)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


def test_pods_resolve_services_srv_and_ptr_over_udp_and_tcp_and_see_changes() -> None:
    async def test() -> None:
        services = {("default", "web"): service("web", "10.96.0.10")}
        node = NodeDns(services, {}, listen=loopback(), port=0, upstreams=lambda: [], debounce=0.01)
        async with node_dns(node) as server:
            code, out = await nslookup(server, "web.default.svc.shoal")
            assert code == 0 and "Name:\tweb.default.svc.shoal\nAddress: 10.96.0.10" in out, out
            code, out = await nslookup(server, "-type=srv", "_http._tcp.web.default.svc.shoal")
            assert code == 0 and "service = 0 100 80 web.default.svc.shoal" in out, out
            code, out = await nslookup(server, "10.96.0.10")
            assert code == 0 and "name = web.default.svc.shoal" in out, out
            code, out = await nslookup(server, "nope.default.svc.shoal")
            assert code != 0 and "NXDOMAIN" in out, out
            response = await ask_tcp(server, "WEB.default.svc.shoal")
            assert addresses(response) == ["10.96.0.10"] and response.flags & dns.flags.AA
            services[("default", "api")] = service("api", "10.96.0.11")
            node.changed()
            deadline = time.monotonic() + 5
            while (await ask_udp(server, "api.default.svc.shoal")).rcode() != dns.rcode.NOERROR:
                assert time.monotonic() < deadline, "the new Service never appeared in DNS"
                await asyncio.sleep(0.02)
            assert addresses(await ask_udp(server, "api.default.svc.shoal")) == ["10.96.0.11"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:  # stopped: the port is free again
            again.bind(server)
    run(test)


def test_other_names_are_forwarded_over_udp_and_tcp_and_cluster_names_never_are() -> None:
    async def test() -> None:
        async with upstream_on(loopback()) as (fake, port):
            upstream = fake.transport.get_extra_info("sockname")[0]  # type: ignore[union-attr]
            node = NodeDns({("default", "web"): service("web", "10.96.0.10")}, {}, listen=loopback(), port=0,
                           upstreams=lambda: [(upstream, port)], debounce=0.0)
            async with node_dns(node) as server:
                code, out = await nslookup(server, "www.example.com")
                assert code == 0 and f"Address: {OUTSIDE_IP}" in out, out
                over_tcp = await ask_tcp(server, "mail.example.com")
                assert addresses(over_tcp) == [OUTSIDE_IP] and not over_tcp.flags & dns.flags.AA
                began = time.monotonic()
                for expanded in ("www.example.com.default.svc.shoal", "www.example.com.svc.shoal",
                                 "www.example.com.shoal"):
                    assert (await ask_udp(server, expanded)).rcode() == dns.rcode.NXDOMAIN
                assert time.monotonic() - began < 1.0
                assert addresses(await ask_udp(server, "web.default.svc.shoal")) == ["10.96.0.10"]
        assert "www.example.com." in fake.asked and "mail.example.com." in fake.asked
        assert [name for name in fake.asked if "shoal" in name] == []
    run(test)


def test_a_silent_upstream_gives_servfail_within_the_timeout() -> None:
    async def test() -> None:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
        silent.bind((loopback(), 0))
        try:
            node = NodeDns({}, {}, listen=loopback(), port=0, upstreams=lambda: [silent.getsockname()],
                           timeout=0.3, debounce=0.0)
            async with node_dns(node) as server:
                began = time.monotonic()
                response = await ask_udp(server, "www.example.com", timeout=5)
                assert response.rcode() == dns.rcode.SERVFAIL
                assert 0.25 < time.monotonic() - began < 2.0
                assert (await ask_tcp(server, "www.example.com")).rcode() == dns.rcode.SERVFAIL
                no_upstreams = NodeDns({}, {}, listen=loopback(), port=0, upstreams=lambda: [], debounce=0.0)
                async with node_dns(no_upstreams) as other:
                    assert (await ask_udp(other, "www.example.com")).rcode() == dns.rcode.SERVFAIL
        finally:
            silent.close()
    run(test)


def test_garbage_is_dropped_or_refused_and_never_reaches_the_upstream() -> None:
    async def test() -> None:
        async with upstream_on(loopback()) as (fake, port):
            upstream = fake.transport.get_extra_info("sockname")[0]  # type: ignore[union-attr]
            node = NodeDns({}, {}, listen=loopback(), port=0, upstreams=lambda: [(upstream, port)], debounce=0.0)
            async with node_dns(node) as server:
                loop = asyncio.get_running_loop()
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)
                    await loop.sock_connect(sock, server)
                    for junk in (b"\x01", b"\x12\x34\x01\x00\x00\x01" + b"\xff" * 9):
                        await loop.sock_sendall(sock, junk)
                    reply = await asyncio.wait_for(loop.sock_recv(sock, 512), 5)
                    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
                    await loop.sock_sendall(sock, dns.message.make_query("web.default.svc.shoal", "A").to_wire())
                    after = dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(sock, 512), 5))
                    assert after.rcode() == dns.rcode.NXDOMAIN  # still serving
        assert fake.received == 0
    run(test)
