"""The cluster DNS zone: what a pod's resolver gets back for service, pod, SRV and PTR names, NXDOMAIN
inside the cluster domain, names left for the upstream resolvers, and the same answers on the wire."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from hypothesis import given
from hypothesis import strategies as st

from shoal.model.endpoints import EndpointAddress, EndpointPort, Endpoints, EndpointSubset, EndpointTargetRef
from shoal.model.meta import ObjectMeta
from shoal.model.service import Service, ServicePort, ServiceSpec
from shoal.net.dns import DnsServer, answer
from shoal.net.dnszone import Lookup, RecordType, Srv, Zone, build_zone, lookup


def svc(name: str, ns: str, cluster_ip: str, ports: list[ServicePort] | None = None) -> Service:
    return Service(metadata=ObjectMeta(name=name, namespace=ns),
                   spec=ServiceSpec(cluster_ip=cluster_ip, ports=ports or []))


def eps(name: str, ns: str, ready: list[str], not_ready: list[str] = (), port: int = 8080,  # type: ignore[assignment]
        port_name: str = "http") -> Endpoints:
    def address(ip: str) -> EndpointAddress:
        return EndpointAddress(ip=ip, target_ref=EndpointTargetRef(name=f"pod-{ip}", namespace=ns))
    return Endpoints(metadata=ObjectMeta(name=name, namespace=ns), subsets=[EndpointSubset(
        addresses=[address(ip) for ip in ready], not_ready_addresses=[address(ip) for ip in not_ready],
        ports=[EndpointPort(name=port_name, port=port)])])


WEB = svc("web", "default", "10.96.0.10", [ServicePort(name="http", port=80), ServicePort(port=81),
                                            ServicePort(name="dns", port=53, protocol="UDP")])
DB = svc("db", "prod", "None", [ServicePort(name="pg", port=5432)])
PENDING = svc("new", "default", "")


def zone(domain: str = "shoal") -> Zone:
    built, problems = build_zone(
        [WEB, DB, PENDING],
        [eps("web", "default", ["10.77.0.2", "10.77.0.3"]),
         eps("db", "prod", ["10.77.1.5", "10.77.1.6"], ["10.77.1.7"], port=5433, port_name="pg")],
        domain=domain, reverse=["10.96.0.0/16", "10.77.0.0/16"])
    assert problems == []
    return built


def values(result: Lookup | None) -> list[str | Srv]:
    assert result is not None
    return sorted((r.value for r in result.answers), key=str)


def test_service_name_answers_its_cluster_ip_in_any_case_with_or_without_final_dot() -> None:
    z = zone()
    for name in ("web.default.svc.shoal", "WEB.Default.SVC.shoal.", "web.default.svc.shoal."):
        assert values(lookup(z, name, "A")) == ["10.96.0.10"]


def test_headless_service_answers_ready_endpoints_only_each_with_its_own_name() -> None:
    z = zone()
    assert values(lookup(z, "db.prod.svc.shoal", "A")) == ["10.77.1.5", "10.77.1.6"]
    assert values(lookup(z, "10-77-1-5.db.prod.svc.shoal", "A")) == ["10.77.1.5"]
    missing = lookup(z, "10-77-1-7.db.prod.svc.shoal", "A")  # not ready
    assert missing is not None and missing.rcode == "NXDOMAIN"


def test_srv_records_for_named_ports_with_the_target_address_alongside() -> None:
    z = zone()
    http = lookup(z, "_http._tcp.web.default.svc.shoal", "SRV")
    assert values(http) == [Srv(0, 100, 80, "web.default.svc.shoal")]
    assert http is not None and [(r.name, r.value) for r in http.additional] == [("web.default.svc.shoal",
                                                                                   "10.96.0.10")]
    assert values(lookup(z, "_dns._udp.web.default.svc.shoal", "SRV")) == [Srv(0, 100, 53, "web.default.svc.shoal")]
    pg = lookup(z, "_pg._tcp.db.prod.svc.shoal", "SRV")  # headless: one per ready endpoint, its target port
    assert values(pg) == [Srv(0, 100, 5433, "10-77-1-5.db.prod.svc.shoal"),
                          Srv(0, 100, 5433, "10-77-1-6.db.prod.svc.shoal")]
    assert pg is not None and sorted(str(r.value) for r in pg.additional) == ["10.77.1.5", "10.77.1.6"]
    unnamed = lookup(z, "_81._tcp.web.default.svc.shoal", "SRV")
    assert unnamed is not None and unnamed.rcode == "NXDOMAIN"


def test_ptr_for_cluster_ips_and_pod_addresses() -> None:
    z = zone()
    assert values(lookup(z, "10.0.96.10.in-addr.arpa", "PTR")) == ["web.default.svc.shoal"]
    assert values(lookup(z, "2.0.77.10.in-addr.arpa.", "PTR")) == ["10-77-0-2.default.pod.shoal"]
    assert values(lookup(z, "5.1.77.10.in-addr.arpa", "PTR")) == ["10-77-1-5.db.prod.svc.shoal"]
    assert values(lookup(z, "7.1.77.10.in-addr.arpa", "PTR")) == ["10-77-1-7.prod.pod.shoal"]  # not ready: a pod


def test_unknown_address_in_a_cluster_network_is_nxdomain_elsewhere_forwarded() -> None:
    z = zone()
    inside = lookup(z, "99.0.96.10.in-addr.arpa", "PTR")
    assert inside is not None and inside.rcode == "NXDOMAIN"
    assert inside.authority[0].type is RecordType.SOA and inside.authority[0].name == "96.10.in-addr.arpa"
    assert lookup(z, "8.8.8.8.in-addr.arpa", "PTR") is None
    assert lookup(z, "96.10.in-addr.arpa", "PTR") is None


def test_pod_names_answer_the_address_they_spell() -> None:
    z = zone()
    assert values(lookup(z, "10-77-3-4.default.pod.shoal", "A")) == ["10.77.3.4"]
    assert values(lookup(z, "10-77-3-4.Other.POD.shoal", "A")) == ["10.77.3.4"]
    for bad in ("10-77-3.default.pod.shoal", "10-77-3-400.default.pod.shoal", "x.10-77-3-4.default.pod.shoal"):
        result = lookup(z, bad, "A")
        assert result is not None and result.rcode == "NXDOMAIN", bad
    ns = lookup(z, "default.pod.shoal", "A")
    assert ns is not None and (ns.rcode, ns.answers) == ("NOERROR", ())


def test_unknown_names_inside_the_domain_are_nxdomain_existing_ones_without_the_type_are_nodata() -> None:
    z = zone()
    for name in ("nope.default.svc.shoal", "web.nope.svc.shoal", "web.shoal", "x.y.shoal"):
        result = lookup(z, name, "A")
        assert result is not None and result.rcode == "NXDOMAIN", name
        assert [r.type for r in result.authority] == [RecordType.SOA]
    for name, rtype in (("web.default.svc.shoal", "AAAA"), ("web.default.svc.shoal", "MX"),
                        ("default.svc.shoal", "A"), ("svc.shoal", "A"), ("new.default.svc.shoal", "A")):
        result = lookup(z, name, rtype)
        assert result is not None and (result.rcode, result.answers) == ("NOERROR", ()), name
    soa = lookup(z, "shoal", "SOA")
    assert soa is not None and [r.type for r in soa.answers] == [RecordType.SOA]


def test_search_expansions_of_outside_names_are_answered_here_never_forwarded() -> None:
    z = zone()
    for expanded in ("example.com.default.svc.shoal", "example.com.svc.shoal", "example.com.shoal",
                     "web.default.svc.shoal.default.svc.shoal"):
        result = lookup(z, expanded, "A")
        assert result is not None and result.rcode == "NXDOMAIN", expanded
    assert lookup(z, "example.com", "A") is None
    assert lookup(z, "shoal.example.com", "A") is None
    assert lookup(z, "notshoal", "A") is None


def test_the_cluster_domain_is_a_parameter() -> None:
    z = zone("Cluster.Local.")
    assert values(lookup(z, "web.default.svc.cluster.local", "A")) == ["10.96.0.10"]
    assert values(lookup(z, "10-1-2-3.default.pod.cluster.local", "A")) == ["10.1.2.3"]
    assert values(lookup(z, "10.0.96.10.in-addr.arpa", "PTR")) == ["web.default.svc.cluster.local"]
    assert lookup(z, "web.default.svc.shoal", "A") is None


def test_a_service_whose_cluster_ip_is_not_ipv4_is_reported_and_gets_no_record() -> None:
    built, problems = build_zone([svc("v6", "default", "fd00::1")], [])
    assert problems == ["Service default/v6: spec.clusterIP 'fd00::1' is not an IPv4 address; it gets no DNS A record"]
    result = lookup(built, "v6.default.svc.shoal", "A")
    assert result is not None and (result.rcode, result.answers) == ("NOERROR", ())


@given(st.lists(st.booleans(), min_size=21, max_size=21))
def test_any_mix_of_letter_case_gets_the_same_answer(upper: list[bool]) -> None:
    name = "".join(c.upper() if u else c for c, u in zip("web.default.svc.shoal", upper, strict=True))
    assert values(lookup(ZONE, name, "A")) == ["10.96.0.10"]


ZONE = zone()


def ask(name: str, rtype: str, z: Zone = ZONE, *, tcp: bool = False, **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rtype, **kw)  # type: ignore[arg-type]
    wire = answer(z, query.to_wire(), tcp=tcp)
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.id == query.id
    return response


def test_wire_answers_keep_the_question_as_asked_and_are_authoritative() -> None:
    response = ask("Web.Default.svc.shoal", "A")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    [rrset] = response.answer
    assert rrset.name.to_text() == "Web.Default.svc.shoal." and [r.address for r in rrset] == ["10.96.0.10"]
    assert ask("nope.default.svc.shoal", "A").rcode() == dns.rcode.NXDOMAIN
    ptr = ask("10.0.96.10.in-addr.arpa", "PTR")
    assert [r.target.to_text() for r in ptr.answer[0]] == ["web.default.svc.shoal."]


def test_outside_names_are_left_to_forwarding_and_garbage_gets_formerr() -> None:
    assert answer(ZONE, dns.message.make_query("example.com", "A").to_wire()) is None
    garbage = answer(ZONE, b"\x12\x34" + b"\x01\x00" + b"\x00\x01" + b"\xff" * 9)
    assert garbage is not None and garbage[:2] == b"\x12\x34" and garbage[3] & 0x0F == dns.rcode.FORMERR
    assert answer(ZONE, b"\x01") is None  # not even a header: no answer (the server drops it)


def test_big_answers_are_truncated_over_udp_and_whole_over_tcp() -> None:
    ready = [f"10.77.2.{i}" for i in range(1, 101)]
    big, _ = build_zone([svc("many", "default", "None")], [eps("many", "default", ready)])
    udp = ask("many.default.svc.shoal", "A", big)
    assert udp.flags & dns.flags.TC
    tcp = ask("many.default.svc.shoal", "A", big, tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 100
    edns = ask("many.default.svc.shoal", "A", big, use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC and len(edns.answer[0]) == 100


def test_the_server_reuses_answers_per_query_with_the_callers_id_until_the_zone_changes() -> None:
    current = [ZONE]
    server = DnsServer(lambda: current[0], lambda: [])
    first, second = dns.message.make_query("web.default.svc.shoal", "A"), dns.message.make_query(
        "web.default.svc.shoal", "A")
    second.id = (first.id + 1) % 65536
    for query in (first, second, first):
        wire = server.local(query.to_wire(), tcp=False)
        assert wire is not None
        response = dns.message.from_wire(wire)
        assert response.id == query.id and addresses(response) == ["10.96.0.10"]
    assert server.local(dns.message.make_query("example.com", "A").to_wire(), tcp=False) is None
    current[0], _ = build_zone([svc("web", "default", "10.96.0.99")], [])
    wire = server.local(first.to_wire(), tcp=False)
    assert wire is not None and addresses(dns.message.from_wire(wire)) == ["10.96.0.99"]


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer for r in rrset)


def test_registered_devices_are_service_addresses_but_not_pods() -> None:
    plc = svc("plc", "default", "10.96.0.20", [ServicePort(name="modbus", port=502)])
    device = Endpoints(metadata=ObjectMeta(name="plc", namespace="default"), subsets=[EndpointSubset(
        addresses=[EndpointAddress(ip="192.0.2.7", target_ref=EndpointTargetRef(
            kind="EndpointRegistration", name="plc-7", namespace="default"))],
        ports=[EndpointPort(name="modbus", port=502)])])
    built, problems = build_zone([plc], [device], reverse=["10.96.0.0/16"])
    assert problems == []
    assert values(lookup(built, "plc.default.svc.shoal", "A")) == ["10.96.0.20"]
    assert lookup(built, "7.2.0.192.in-addr.arpa", "PTR") is None  # forwarded: not a pod of this cluster
