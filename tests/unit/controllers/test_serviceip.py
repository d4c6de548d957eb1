"""Service address allocation: cluster IPs from the service CIDR (first host reserved), node ports
from 30000-32767, never one another Service holds; clashes and exhaustion are Warning events."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from shoal.controllers import Controller
from shoal.controllers.actions import EmitEvent, Update
from shoal.controllers.serviceip import (
    REASON_IP_CLASH,
    REASON_IP_EXHAUSTED,
    REASON_PORT_CLASH,
    REASON_PORT_EXHAUSTED,
    ServiceIPAllocator,
    allocate_service,
)
from shoal.model import ObjectMeta, Service
from shoal.model.service import ServicePort, ServiceSpec, ServiceType

from .helpers import FakeClock, eventually, running
from .memstore import MemStore

CIDR = ipaddress.ip_network("10.96.0.0/16")


def svc(name: str, ip: str = "", *, ports: tuple[int, ...] = (), node_port: bool = False,
        created: str = "2026-11-23T08:00:00Z") -> Service:
    return Service(metadata=ObjectMeta(name=name, namespace="default", creation_timestamp=created),
                   spec=ServiceSpec(type=ServiceType.NODE_PORT if node_port else ServiceType.CLUSTER_IP,
                                    cluster_ip=ip,
                                    ports=[ServicePort(name=f"p{i}", port=80 + i, node_port=n)
                                           for i, n in enumerate(ports or (0,))]))


def updated(svc_: Service, others: list[Service], **kw: object) -> Service:
    steps = allocate_service(svc_, others, CIDR, **kw).steps  # type: ignore[arg-type]
    [step] = [s for s in steps if isinstance(s, Update)]
    assert isinstance(step.obj, Service)
    return step.obj


def test_first_free_address_after_the_reserved_one() -> None:
    assert updated(svc("a"), []).spec.cluster_ip == "10.96.0.2"
    others = [svc("b", "10.96.0.2"), svc("c", "10.96.0.3"), svc("d", "10.96.0.5")]
    assert updated(svc("a"), others).spec.cluster_ip == "10.96.0.4"


def test_a_service_with_addresses_is_left_alone() -> None:
    done = svc("a", "10.96.0.7", ports=(30001,), node_port=True)
    assert allocate_service(done, [done, svc("b", "10.96.0.8")], CIDR).steps == ()


def test_node_ports_skip_taken_ones_and_each_port_gets_its_own() -> None:
    others = [svc("b", "10.96.0.2", ports=(30000, 30002), node_port=True)]
    out = updated(svc("a", "10.96.0.3", ports=(0, 0, 30001), node_port=True), others)
    assert [p.node_port for p in out.spec.ports] == [30003, 30004, 30001]


def test_cluster_ip_services_get_no_node_port() -> None:
    assert updated(svc("a"), []).spec.ports[0].node_port == 0


def test_exhausted_ranges_say_what_to_do() -> None:
    small = ipaddress.ip_network("10.96.0.0/30")  # hosts .1 (reserved) and .2
    steps = allocate_service(svc("a", node_port=True), [svc("b", "10.96.0.2", ports=(30000,), node_port=True)],
                             small, range(30000, 30001)).steps
    reasons = {s.reason: s.message for s in steps if isinstance(s, EmitEvent)}
    assert "widen --service-cidr" in reasons[REASON_IP_EXHAUSTED]
    assert "30000-30000 is taken" in reasons[REASON_PORT_EXHAUSTED]
    assert not [s for s in steps if isinstance(s, Update)]


def test_a_newer_service_reusing_an_address_or_port_is_warned_the_older_is_not() -> None:
    old = svc("old", "10.96.0.9", ports=(30080,), node_port=True, created="2026-11-23T07:00:00Z")
    new = svc("new", "10.96.0.9", ports=(30080,), node_port=True)
    reasons = [s.reason for s in allocate_service(new, [old], CIDR).steps if isinstance(s, EmitEvent)]
    assert reasons == [REASON_IP_CLASH, REASON_PORT_CLASH]
    assert allocate_service(old, [new], CIDR).steps == ()


def test_a_bad_service_cidr_is_refused_with_the_flag_name() -> None:
    with pytest.raises(ValueError, match="--service-cidr"):
        ServiceIPAllocator("10.96.0.0/33")


def test_many_services_created_at_once_get_distinct_addresses() -> None:
    async def main() -> None:
        clock = FakeClock()
        store = MemStore(clock)
        controller = Controller(ServiceIPAllocator(), store, clock, workers=1)
        async with running([controller]):
            for i in range(20):
                await store.create(svc(f"s{i}", node_port=True))

            def allocated() -> list[Service]:
                return [s for s in store.objects("Service") if isinstance(s, Service) and s.spec.cluster_ip]

            await eventually(lambda: len(allocated()) == 20, what="20 cluster IPs")
            assert len({s.spec.cluster_ip for s in allocated()}) == 20
            assert len({s.spec.ports[0].node_port for s in allocated()}) == 20
            assert "10.96.0.1" not in {s.spec.cluster_ip for s in allocated()}

    asyncio.run(asyncio.wait_for(main(), 20))
