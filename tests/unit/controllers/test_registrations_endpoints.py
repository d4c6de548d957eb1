"""Registrations in Endpoints: live registrations are ready addresses next to pods, a Service without a
selector gets Endpoints from registrations alone, ports map by target or name, expired or deleting
registrations are left out, and user-written Endpoints are left alone."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from shoal.controllers import Controller
from shoal.controllers.actions import Create, EmitEvent, Update
from shoal.controllers.endpoints import (
    EXPIRY_SLACK,
    REASON_BAD_REGISTRATION,
    REASON_NOT_MANAGED,
    EndpointsController,
    endpoints_for,
)
from shoal.model import (
    EndpointRegistration,
    EndpointRegistrationSpec,
    EndpointRegistrationStatus,
    NodePhase,
    ObjectMeta,
    OwnerReference,
    RegistrationPort,
    Service,
)
from shoal.model.endpoints import Endpoints, EndpointSubset
from shoal.model.service import ServicePort, ServiceSpec

from .helpers import T0, FakeClock, eventually, online_node, run, running
from .memstore import MemStore
from .test_endpoints import pod

ONLINE = {"n1": NodePhase.ONLINE}


def svc(*, selector: dict[str, str] | None = None, ports: list[ServicePort] | None = None) -> Service:
    return Service(metadata=ObjectMeta(name="web", namespace="default", uid="svc-uid"),
                   spec=ServiceSpec(selector={} if selector is None else selector,
                                    ports=[ServicePort(name="http", port=80, target_port=8080)]
                                    if ports is None else ports))


def registration(name: str, address: str, *, port: int | None = 8080, ports: list[RegistrationPort] | None = None,
                 weight: int | None = None, expires: str = "", deleting: bool = False,
                 service: str = "web") -> EndpointRegistration:
    return EndpointRegistration(
        metadata=ObjectMeta(name=name, namespace="default", uid=f"r-{name}",
                            deletion_timestamp="2026-11-23T08:00:00Z" if deleting else ""),
        spec=EndpointRegistrationSpec(service=service, address=address, port=None if ports else port,
                                      ports=ports or [], weight=weight),
        status=EndpointRegistrationStatus(expires_at=expires))


def written(steps: tuple[object, ...]) -> Endpoints:
    [step] = [s for s in steps if isinstance(s, Create | Update)]
    assert isinstance(step, Create | Update) and isinstance(step.obj, Endpoints)
    return step.obj


def test_registrations_are_ready_addresses_next_to_pods() -> None:
    service = svc(selector={"app": "web"})
    regs = [registration("plc-7", "192.0.2.7", weight=3), registration("other", "192.0.2.9", service="db")]
    actions = endpoints_for(service, [pod("a", "10.77.1.2")], ONLINE, None, regs, T0)
    [subset] = written(actions.steps).subsets
    assert [a.ip for a in subset.addresses] == ["10.77.1.2", "192.0.2.7"]
    device = subset.addresses[1]
    assert device.target_ref is not None and (device.target_ref.kind, device.target_ref.name) == (
        "EndpointRegistration", "plc-7")
    assert (device.weight, device.node_name) == (3, "")
    assert [(p.name, p.port) for p in subset.ports] == [("http", 8080)]


def test_selectorless_service_gets_endpoints_from_registrations_only() -> None:
    service = svc()
    assert endpoints_for(service, [pod("a", "10.77.1.2")], ONLINE, None, [], T0).steps == ()
    eps = written(endpoints_for(service, [pod("a", "10.77.1.2")], ONLINE, None,
                                [registration("plc-7", "192.0.2.7")], T0).steps)
    assert [a.ip for s in eps.subsets for a in s.addresses] == ["192.0.2.7"]  # pods are not selected
    assert eps.metadata.owner_references == [OwnerReference(kind="Service", name="web", uid="svc-uid",
                                                            controller=True)]
    emptied = written(endpoints_for(service, [], ONLINE, eps, [], T0).steps)
    assert emptied.subsets == []  # the last registration went: the Endpoints stay, with no addresses


def test_user_written_endpoints_are_left_alone_with_a_warning() -> None:
    user = Endpoints(metadata=ObjectMeta(name="web", namespace="default"),
                     subsets=[EndpointSubset()])
    assert endpoints_for(svc(), [], ONLINE, user, [], T0).steps == ()
    [event] = endpoints_for(svc(), [], ONLINE, user, [registration("plc-7", "192.0.2.7")], T0).steps
    assert isinstance(event, EmitEvent) and event.reason == REASON_NOT_MANAGED and "plc-7" in event.message


def test_expired_and_deleting_registrations_are_left_out_and_the_next_expiry_is_requeued() -> None:
    soon, gone = T0 + timedelta(seconds=4), T0 - timedelta(seconds=1)
    regs = [registration("live", "192.0.2.7", expires=soon.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            registration("late", "192.0.2.8", expires=gone.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            registration("bye", "192.0.2.9", deleting=True)]
    actions = endpoints_for(svc(), [], ONLINE, None, regs, T0)
    assert [a.ip for s in written(actions.steps).subsets for a in s.addresses] == ["192.0.2.7"]
    assert actions.result.requeue_after == 4 + EXPIRY_SLACK


def test_ports_map_by_target_by_only_port_or_by_name() -> None:
    two = [ServicePort(name="modbus", port=502), ServicePort(name="http", port=80, target_port=8080)]
    by_target = written(endpoints_for(svc(ports=two), [], ONLINE, None, [registration("a", "192.0.2.7")], T0).steps)
    assert [(p.name, p.port) for s in by_target.subsets for p in s.ports] == [("http", 8080)]
    only = written(endpoints_for(svc(ports=[ServicePort(name="http", port=80)]), [], ONLINE, None,
                                 [registration("a", "192.0.2.7", port=8443)], T0).steps)
    assert [(p.name, p.port) for s in only.subsets for p in s.ports] == [("http", 8443)]
    named = written(endpoints_for(svc(ports=two), [], ONLINE, None, [registration("a", "192.0.2.7", ports=[
        RegistrationPort(name="modbus", port=5020), RegistrationPort(name="http", port=81)])], T0).steps)
    assert [(p.name, p.port) for s in named.subsets for p in s.ports] == [("http", 81), ("modbus", 5020)]
    headless = written(endpoints_for(svc(ports=[]), [], ONLINE, None, [registration("a", "192.0.2.7")], T0).steps)
    assert [(p.name, p.port, p.protocol) for s in headless.subsets for p in s.ports] == [("", 8080, "TCP")]


def test_a_registration_serving_none_of_the_ports_is_reported() -> None:
    two = [ServicePort(name="modbus", port=502), ServicePort(name="http", port=80)]
    actions = endpoints_for(svc(ports=two), [], ONLINE, None, [registration("a", "192.0.2.7", port=9999)], T0)
    assert written(actions.steps).subsets == []
    [event] = actions.events
    assert event.reason == REASON_BAD_REGISTRATION
    assert "its ports ((unnamed) 9999/TCP) serve none of Service web's ports" in event.message


def test_runner_follows_registrations_of_a_selectorless_service() -> None:
    async def main() -> None:
        clock = FakeClock()
        store = MemStore(clock)
        async with running([Controller(EndpointsController(), store, clock, workers=1)]):
            await store.create(online_node("n1"))
            await store.create(svc())
            await store.create(registration("plc-7", "192.0.2.7"))

            def addresses() -> list[str]:
                return [a.ip for e in store.objects("Endpoints") if isinstance(e, Endpoints)
                        for s in e.subsets for a in s.addresses]

            await eventually(lambda: addresses() == ["192.0.2.7"], what="registration address")
            await store.delete("EndpointRegistration", "default", "plc-7")
            await eventually(lambda: addresses() == [], what="registration removed")
            assert len(store.objects("Endpoints")) == 1

    run(main)


def test_registration_weight_survives_a_replace() -> None:
    base = registration("plc-7", "192.0.2.7", weight=0)
    changed = msgspec.structs.replace(base, spec=msgspec.structs.replace(base.spec, weight=7))
    first = written(endpoints_for(svc(), [], ONLINE, None, [base], T0).steps)
    assert first.subsets[0].addresses[0].weight == 0
    second = written(endpoints_for(svc(), [], ONLINE, first, [changed], T0).steps)
    assert second.subsets[0].addresses[0].weight == 7
