"""The hand-written DNS wire codec against dnspython (the reference): queries it parses, responses
dnspython reads back, truncation, and hostile messages refused without looping or crashing."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from shoal.net.dnswire import Query, WireError, error_response, parse_query, response
from shoal.net.dnszone import Srv


def test_a_dnspython_query_parses_with_its_edns_payload() -> None:
    wire = dns.message.make_query("Web.Default.svc.shoal", "SRV", use_edns=0, payload=1232).to_wire()
    query = parse_query(wire)
    assert (query.qname, query.type_name, query.payload, query.opcode) == ("Web.Default.svc.shoal", "SRV", 1232, 0)


def test_responses_read_back_in_dnspython() -> None:
    query = parse_query(dns.message.make_query("_http._tcp.web.default.svc.shoal", "SRV").to_wire())
    wire = response(query, "NOERROR", [(query.qname, "SRV", Srv(0, 100, 80, "web.default.svc.shoal"))], [],
                    [("web.default.svc.shoal", "A", "10.96.0.7")], ttl=5, limit=512)
    parsed = dns.message.from_wire(wire)
    assert parsed.rcode() == dns.rcode.NOERROR and parsed.flags & dns.flags.AA
    assert parsed.answer[0].rdtype == dns.rdatatype.SRV and parsed.answer[0][0].port == 80
    assert str(parsed.additional[0][0]) == "10.96.0.7"
    nx = response(query, "NXDOMAIN", [], [("shoal", "SOA", "ns.dns.shoal. hostmaster.shoal. 3 7200 1800 86400 5")],
                  [], ttl=5, limit=512)
    parsed = dns.message.from_wire(nx)
    assert parsed.rcode() == dns.rcode.NXDOMAIN and parsed.authority[0][0].serial == 3


def test_a_response_over_the_limit_is_cut_to_the_question_with_tc() -> None:
    query = parse_query(dns.message.make_query("big.default.svc.shoal", "A").to_wire())
    answers = [(query.qname, "A", f"10.0.{i // 250}.{i % 250}") for i in range(100)]
    wire = response(query, "NOERROR", answers, [], [], ttl=5, limit=512)
    parsed = dns.message.from_wire(wire)
    assert parsed.flags & dns.flags.TC and not parsed.answer and len(wire) < 100
    assert len(response(query, "NOERROR", answers, [], [], ttl=5, limit=65535)) > 1000


@pytest.mark.parametrize("wire", [
    b"\x00\x01",  # shorter than a header
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01",  # a pointer to itself
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x3fabc",  # a label past the end
    struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01",  # a response, not a query
    struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01" * 2,  # two questions
])
def test_hostile_or_broken_messages_are_refused(wire: bytes) -> None:
    with pytest.raises(WireError):
        parse_query(wire)


def test_error_responses_keep_the_id_and_need_a_header() -> None:
    assert error_response(b"\x00", "FORMERR") is None
    wire = error_response(struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0), "SERVFAIL")
    assert wire is not None
    parsed = dns.message.from_wire(wire)
    assert parsed.id == 0xBEEF and parsed.rcode() == dns.rcode.SERVFAIL and parsed.flags & dns.flags.RD
    assert isinstance(parse_query(dns.message.make_query("a.shoal", "A").to_wire()), Query)
