"""The DNS wire format for the node's cluster DNS: parse a query, pack a response (RFC 1035, SRV
RFC 2782, the EDNS0 payload size of RFC 6891).

Only what an authoritative stub for A, AAAA, PTR, SRV and SOA answers needs; anything else is
forwarded as raw bytes and never parsed. Hand-written instead of dnspython on purpose: the agent's
memory budget is 40 MB and dnspython costs it ~6 MB, for about 150 lines of packing. Names are
decoded with compression pointers (bounded, loop-safe) and encoded without compression. Pure.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RCODES", "TYPES", "Query", "WireError", "error_response", "parse_query", "response"]

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "OPT": 41,
         "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
CLASS_IN = 1
_QR, _AA, _TC, _RD, _RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
_HEADER = struct.Struct("!HHHHHH")
_MAX_POINTERS = 32


class WireError(ValueError):
    """A message that is not a well-formed DNS query."""


@dataclass(frozen=True, slots=True)
class Query:
    ident: int
    flags: int
    qname: str  # as asked (case kept), no final dot; "" for the root
    qtype: int
    qclass: int
    question: bytes  # the question section's bytes, echoed in the response
    payload: int | None  # the client's EDNS0 UDP payload size, None without EDNS

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.qtype, f"TYPE{self.qtype}")


def _read_name(wire: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset after it (after the first pointer, if any)."""
    labels: list[str] = []
    end: int | None = None
    pointers = 0
    length = 0
    while True:
        if offset >= len(wire):
            raise WireError("name runs past the end of the message")
        size = wire[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= len(wire) or pointers >= _MAX_POINTERS:
                raise WireError("bad compression pointer")
            pointers += 1
            end = offset + 2 if end is None else end
            offset = ((size & 0x3F) << 8) | wire[offset + 1]
            continue
        if size & 0xC0:
            raise WireError("unknown label type")
        offset += 1
        if size == 0:
            break
        label = wire[offset:offset + size]
        if len(label) != size:
            raise WireError("label runs past the end of the message")
        length += size + 1
        if length > 255:
            raise WireError("name longer than 255 bytes")
        labels.append(label.decode("ascii", errors="replace"))
        offset += size
    return ".".join(labels), (end if end is not None else offset)


def parse_query(wire: bytes) -> Query:
    if len(wire) < _HEADER.size:
        raise WireError("shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & _QR or qdcount != 1:
        raise WireError("not a query with one question")
    qname, offset = _read_name(wire, _HEADER.size)
    if offset + 4 > len(wire):
        raise WireError("question runs past the end of the message")
    qtype, qclass = struct.unpack_from("!HH", wire, offset)
    question = wire[_HEADER.size:offset + 4]
    offset += 4
    payload = None
    for _ in range(ancount + nscount + arcount):  # the OPT pseudo-record sits in the additional section
        _, offset = _read_name(wire, offset)
        if offset + 10 > len(wire):
            raise WireError("record runs past the end of the message")
        rtype, rclass, _, rdlength = struct.unpack_from("!HHIH", wire, offset)
        if rtype == TYPES["OPT"]:
            payload = rclass
        offset += 10 + rdlength
    return Query(ident, flags, qname, qtype, qclass, question, payload)


def _name(name: str) -> bytes:
    out = bytearray()
    for label in (p for p in name.rstrip(".").split(".") if p):
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise WireError(f"label {label!r} longer than 63 bytes")
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\0")


def _rdata(rtype: str, value: object) -> bytes:
    if rtype == "A":
        return ipaddress.IPv4Address(str(value)).packed
    if rtype == "AAAA":
        return ipaddress.IPv6Address(str(value)).packed
    if rtype == "PTR":
        return _name(str(value))
    if rtype == "SRV":
        priority, weight, port, target = (getattr(value, k) for k in ("priority", "weight", "port", "target"))
        return struct.pack("!HHH", priority, weight, port) + _name(target)
    if rtype == "SOA":
        mname, rname, *numbers = str(value).split()
        return _name(mname) + _name(rname) + struct.pack("!IIIII", *(int(n) for n in numbers))
    raise WireError(f"cannot pack {rtype} records")


def _records(records: Iterable[tuple[str, str, object]], ttl: int) -> tuple[bytes, int]:
    out = bytearray()
    count = 0
    for owner, rtype, value in records:
        data = _rdata(rtype, value)
        out += _name(owner) + struct.pack("!HHIH", TYPES[rtype], CLASS_IN, ttl, len(data)) + data
        count += 1
    return bytes(out), count


def response(query: Query, rcode: str, answers: Iterable[tuple[str, str, object]],
             authority: Iterable[tuple[str, str, object]], additional: Iterable[tuple[str, str, object]], *,
             ttl: int, limit: int) -> bytes:
    """An authoritative response; over ``limit`` bytes it is cut to the question with TC set."""
    flags = _QR | (query.flags & (0x7800 | _RD)) | _AA | _RA | RCODES[rcode]
    sections = [_records(s, ttl) for s in (answers, authority, additional)]
    body = b"".join(data for data, _ in sections)
    header = _HEADER.pack(query.ident, flags, 1, *(count for _, count in sections))
    message = header + query.question + body
    if len(message) <= limit:
        return message
    return _HEADER.pack(query.ident, flags | _TC, 1, 0, 0, 0) + query.question


def error_response(wire: bytes, rcode: str) -> bytes | None:
    """A header-only response with ``rcode`` to whatever ``wire`` asked; None when it has no header."""
    if len(wire) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", wire)
    return _HEADER.pack(ident, _QR | (flags & (0x7800 | _RD)) | _RA | RCODES[rcode], 0, 0, 0, 0)
