"""Service table rendering: Services + Endpoints → rules → one nft script (golden text), weighted
slot order, stale names deleted, and problems reported instead of a broken table."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from shoal.model import ObjectMeta, Service
from shoal.model.endpoints import EndpointAddress, EndpointPort, Endpoints, EndpointSubset
from shoal.model.service import LoadBalancing, ServicePort, ServiceSpec, ServiceType
from shoal.net.services import MAX_SLOTS, Backend, PortRule, TableState, parse_state, render, service_rules, slot_order

T = "ip shoal"
HEAD = f"""add table {T}
flush table {T}
add chain {T} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {T} output {{ type nat hook output priority -100; policy accept; }}
add chain {T} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain {T} filter-forward {{ type filter hook forward priority filter; policy accept; }}
add chain {T} filter-output {{ type filter hook output priority filter; policy accept; }}
add chain {T} services
add map {T} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
add map {T} service-nodeports {{ type inet_proto . inet_service : verdict; }}
add set {T} no-endpoints {{ type ipv4_addr . inet_proto . inet_service; }}
"""
BASE_RULES = f"""add rule {T} prerouting jump services
add rule {T} output jump services
add rule {T} postrouting meta mark & 0x8000 == 0x8000 masquerade
add rule {T} filter-forward ip daddr . meta l4proto . th dport @no-endpoints reject
add rule {T} filter-output ip daddr . meta l4proto . th dport @no-endpoints reject
add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips
"""


def svc(name: str = "web", ip: str = "10.96.0.10", *, node_port: int = 0, affinity: bool = False,
        weighted: bool = False, protocol: str = "TCP") -> Service:
    return Service(metadata=ObjectMeta(name=name, namespace="default"),
                   spec=ServiceSpec(type=ServiceType.NODE_PORT if node_port else ServiceType.CLUSTER_IP,
                                    selector={"app": name}, cluster_ip=ip,
                                    ports=[ServicePort(name="http", port=80, node_port=node_port, protocol=protocol)],
                                    session_affinity="ClientIP" if affinity else "None",
                                    load_balancing=LoadBalancing(policy="Weighted") if weighted else None))


def eps(name: str = "web", ready: dict[str, int] | None = None, not_ready: tuple[str, ...] = ()) -> Endpoints:
    ready = {"10.77.1.2": 1, "10.77.1.3": 1} if ready is None else ready
    return Endpoints(metadata=ObjectMeta(name=name, namespace="default"), subsets=[EndpointSubset(
        addresses=[EndpointAddress(ip=ip, weight=w) for ip, w in ready.items()],
        not_ready_addresses=[EndpointAddress(ip=ip) for ip in not_ready],
        ports=[EndpointPort(name="http", port=8080)])])


def test_round_robin_cluster_ip_renders_one_chain_per_endpoint() -> None:
    rules, problems = service_rules([svc()], [eps(not_ready=("10.77.1.9",))])
    assert problems == []
    ep2, ep3 = "ep-default/web/tcp/80/10.77.1.2/8080", "ep-default/web/tcp/80/10.77.1.3/8080"
    assert render(rules, node_addresses=["198.18.77.1"]) == HEAD + f"""add chain {T} svc-default/web/tcp/80
add chain {T} {ep2}
add chain {T} {ep3}
""" + BASE_RULES + f"""add rule {T} services ip daddr {{ 198.18.77.1 }} meta l4proto . th dport vmap @service-nodeports
add rule {T} svc-default/web/tcp/80 numgen inc mod 2 vmap {{ 0 : goto {ep2}, 1 : goto {ep3} }}
add rule {T} {ep2} ip saddr 10.77.1.2 meta mark set meta mark | 0x8000
add rule {T} {ep2} meta l4proto tcp dnat to 10.77.1.2:8080
add rule {T} {ep3} ip saddr 10.77.1.3 meta mark set meta mark | 0x8000
add rule {T} {ep3} meta l4proto tcp dnat to 10.77.1.3:8080
add element {T} service-ips {{ 10.96.0.10 . tcp . 80 : goto svc-default/web/tcp/80 }}
"""


def test_node_port_affinity_and_a_service_without_endpoints() -> None:
    rules, _ = service_rules([svc(node_port=30080, affinity=True), svc("dns", "10.96.0.53", protocol="UDP")],
                             [eps(ready={"10.77.1.2": 1})])
    ep, aff = "ep-default/web/tcp/80/10.77.1.2/8080", "aff-default/web/tcp/80/10.77.1.2/8080"
    assert render(rules) == HEAD + f"""add chain {T} svc-default/web/tcp/80
add chain {T} {ep}
add set {T} {aff} {{ type ipv4_addr; flags dynamic,timeout; timeout 10800s; }}
add chain {T} nodeport-default/web/tcp/80
""" + BASE_RULES + f"""add rule {T} services fib daddr type local ip daddr != 127.0.0.0/8 \
meta l4proto . th dport vmap @service-nodeports
add rule {T} svc-default/web/tcp/80 ip saddr @{aff} goto {ep}
add rule {T} svc-default/web/tcp/80 goto {ep}
add rule {T} {ep} ip saddr 10.77.1.2 meta mark set meta mark | 0x8000
add rule {T} {ep} update @{aff} {{ ip saddr }}
add rule {T} {ep} meta l4proto tcp dnat to 10.77.1.2:8080
add rule {T} nodeport-default/web/tcp/80 meta mark set meta mark | 0x8000
add rule {T} nodeport-default/web/tcp/80 goto svc-default/web/tcp/80
add element {T} no-endpoints {{ 10.96.0.53 . udp . 80 }}
add element {T} service-ips {{ 10.96.0.10 . tcp . 80 : goto svc-default/web/tcp/80 }}
add element {T} service-nodeports {{ tcp . 30080 : goto nodeport-default/web/tcp/80 }}
"""


def test_weighted_spreads_slots_in_proportion_and_interleaved() -> None:
    rules, _ = service_rules([svc(weighted=True)], [eps(ready={"10.77.1.2": 3, "10.77.1.3": 1, "10.77.1.4": 1})])
    line = next(x for x in render(rules).splitlines() if "numgen" in x)
    a, b, c = (f"ep-default/web/tcp/80/10.77.1.{n}/8080" for n in (2, 3, 4))
    assert line.endswith(f"numgen inc mod 5 vmap {{ 0 : goto {a}, 1 : goto {b}, 2 : goto {a}, "
                         f"3 : goto {c}, 4 : goto {a} }}")


def test_stale_chains_and_sets_are_deleted_and_maps_flushed_before_rebuild() -> None:
    existing = TableState(chains=frozenset({"prerouting", "services", "svc-default/old/tcp/80", "ep-x"}),
                          sets=frozenset({"no-endpoints", "aff-gone"}), maps=frozenset({"service-ips"}), exists=True)
    script = render([], existing)
    assert script.splitlines()[:7] == [
        f"add table {T}", f"flush table {T}", f"flush map {T} service-ips", f"flush set {T} no-endpoints",
        f"delete chain {T} ep-x", f"delete chain {T} svc-default/old/tcp/80", f"delete set {T} aff-gone"]


def test_state_is_read_from_nft_json() -> None:
    listing = ('{"nftables": [{"metainfo": {}}, {"table": {"name": "shoal"}}, {"chain": {"name": "svc-a"}},'
               ' {"set": {"name": "aff-a"}}, {"map": {"name": "service-ips"}}]}')
    assert parse_state(listing) == TableState(frozenset({"svc-a"}), frozenset({"aff-a"}),
                                              frozenset({"service-ips"}), exists=True)


def test_unallocated_headless_ipv6_and_bad_protocols() -> None:
    rules, problems = service_rules(
        [svc("a", ""), svc("b", "None"), svc("c", "fd00::10"), svc("d", protocol="ICMP")], [])
    assert rules == []
    assert problems == [
        "Service default/c: spec.clusterIP 'fd00::10' is not an IPv4 address; only IPv4 services are proxied",
        "Service default/d: spec.ports[0].protocol 'ICMP' is not TCP, UDP or SCTP"]


def test_weight_zero_endpoints_get_no_traffic_and_all_zero_means_no_endpoints() -> None:
    rules, _ = service_rules([svc(weighted=True)], [eps(ready={"10.77.1.2": 0, "10.77.1.3": 2})])
    script = render(rules)
    assert "10.77.1.2" not in script and "goto ep-default/web/tcp/80/10.77.1.3/8080" in script
    rules, _ = service_rules([svc(weighted=True)], [eps(ready={"10.77.1.2": 0})])
    assert f"add element {T} no-endpoints {{ 10.96.0.10 . tcp . 80 }}" in render(rules)


def test_long_names_are_hashed_to_valid_identifiers() -> None:
    long = "x" * 240
    rule = PortRule(key=f"default/{long}/tcp/80", cluster_ip="10.96.0.9", protocol="tcp", port=80,
                    backends=(Backend("10.77.1.2", 80),))
    script = render([rule])
    assert long not in script and "add chain ip shoal h-" in script


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8))
def test_slot_order_matches_weights(weights: list[int]) -> None:
    order = slot_order(weights)
    if not any(weights):
        assert order == []
        return
    counts = Counter(order)
    assert all(counts[i] == 0 for i, w in enumerate(weights) if w == 0)
    assert len(order) <= MAX_SLOTS + len(weights)
    if sum(weights) <= MAX_SLOTS:  # exact proportions once reduced
        total = sum(weights)
        assert all(counts[i] * total == w * len(order) for i, w in enumerate(weights))
