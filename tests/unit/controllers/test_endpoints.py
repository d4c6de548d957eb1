"""The endpoints controller: ready pods on Online nodes are addresses, the rest not-ready; named
target ports; weights from a label; writes only on change; and, through the runner, a pod that
turns unready or whose node goes Offline leaves the addresses."""

from __future__ import annotations

import asyncio

import msgspec

from shoal.controllers import Controller
from shoal.controllers.actions import Create, Delete, EmitEvent, Update
from shoal.controllers.endpoints import REASON_BAD_WEIGHT, EndpointsController, endpoints_for
from shoal.model import (
    Condition,
    Container,
    Node,
    NodePhase,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Service,
)
from shoal.model.endpoints import Endpoints
from shoal.model.pod import ContainerPort
from shoal.model.service import LoadBalancing, ServicePort, ServiceSpec

from .helpers import FakeClock, eventually, online_node, running
from .memstore import MemStore

ONLINE = {"n1": NodePhase.ONLINE, "n2": NodePhase.ONLINE}


def service(target: int | str | None = 8080, *, weighted: bool = False,
            selector: dict[str, str] | None = None) -> Service:
    return Service(metadata=ObjectMeta(name="web", namespace="default", uid="svc-uid", labels={"team": "a"}),
                   spec=ServiceSpec(selector={"app": "web"} if selector is None else selector,
                                    ports=[ServicePort(name="http", port=80, target_port=target)],
                                    load_balancing=LoadBalancing(policy="Weighted", weight_label="w")
                                    if weighted else None))


def pod(name: str, ip: str, *, ready: bool = True, node: str = "n1", labels: dict[str, str] | None = None,
        port: int = 8080, phase: PodPhase = PodPhase.RUNNING, deleting: bool = False) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace="default", uid=f"u-{name}",
                                   labels={"app": "web", **(labels or {})},
                                   deletion_timestamp="2026-11-23T08:00:00Z" if deleting else ""),
               spec=PodSpec(node_name=node, containers=[Container(
                   name="c", image="web", ports=[ContainerPort(name="http", container_port=port)])]),
               status=PodStatus(phase=phase, pod_ip=ip,
                                conditions=[Condition(type="Ready", status="True" if ready else "False")]))


def created(actions_steps: tuple[object, ...]) -> Endpoints:
    [step] = [s for s in actions_steps if isinstance(s, Create | Update)]
    assert isinstance(step, Create | Update) and isinstance(step.obj, Endpoints)
    return step.obj


def test_ready_pods_are_addresses_and_the_rest_not_ready() -> None:
    pods = [pod("b", "10.77.1.10"), pod("a", "10.77.1.9"), pod("slow", "10.77.1.3", ready=False),
            pod("gone", "10.77.2.4", node="n2"), pod("bye", "10.77.1.5", deleting=True),
            pod("done", "10.77.1.6", phase=PodPhase.SUCCEEDED), pod("noip", ""),
            pod("other", "10.77.1.7", labels={"app": "db"})]
    eps = created(endpoints_for(service(), pods, {"n1": NodePhase.ONLINE, "n2": NodePhase.OFFLINE}, None).steps)
    [subset] = eps.subsets
    assert [a.ip for a in subset.addresses] == ["10.77.1.9", "10.77.1.10"]  # numeric order
    assert [a.ip for a in subset.not_ready_addresses] == ["10.77.1.3", "10.77.1.5", "10.77.2.4"]
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [("http", 8080, "TCP")]
    first = subset.addresses[0]
    assert first.node_name == "n1" and first.target_ref is not None and first.target_ref.name == "a"
    assert eps.metadata.name == "web" and eps.metadata.labels == {"team": "a"}
    assert eps.metadata.owner_references[0].kind == "Service"


def test_wire_shape_is_kubernetes_endpoints() -> None:
    eps = created(endpoints_for(service(), [pod("a", "10.77.1.9")], ONLINE, None).steps)
    wire = msgspec.to_builtins(eps)
    assert wire["kind"] == "Endpoints"
    assert wire["subsets"][0]["addresses"][0] == {
        "ip": "10.77.1.9", "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "a", "namespace": "default",
                                                           "uid": "u-a"}}
    assert wire["subsets"][0]["ports"] == [{"port": 8080, "name": "http"}]


def test_named_target_ports_group_pods_by_their_number_and_skip_pods_without_it() -> None:
    pods = [pod("a", "10.77.1.2", port=8080), pod("b", "10.77.1.3", port=9090),
            Pod(metadata=ObjectMeta(name="c", namespace="default", labels={"app": "web"}),  # no ports at all
                spec=PodSpec(node_name="n1", containers=[Container(name="c", image="x")]),
                status=PodStatus(phase=PodPhase.RUNNING, pod_ip="10.77.1.4"))]
    eps = created(endpoints_for(service("http"), pods, ONLINE, None).steps)
    assert [([a.ip for a in s.addresses], s.ports[0].port) for s in eps.subsets] == [
        (["10.77.1.2"], 8080), (["10.77.1.3"], 9090)]


def test_numeric_and_missing_target_ports() -> None:
    eps = created(endpoints_for(service(None), [pod("a", "10.77.1.2")], ONLINE, None).steps)
    assert eps.subsets[0].ports[0].port == 80  # no targetPort: the service port
    eps = created(endpoints_for(service("9000"), [pod("a", "10.77.1.2")], ONLINE, None).steps)
    assert eps.subsets[0].ports[0].port == 9000


def test_weights_come_from_the_label_and_bad_values_are_reported() -> None:
    pods = [pod("a", "10.77.1.2", labels={"w": "3"}), pod("b", "10.77.1.3"), pod("c", "10.77.1.4", labels={"w": "x"})]
    actions = endpoints_for(service(weighted=True), pods, ONLINE, None)
    eps = created(actions.steps)
    assert [a.weight for a in eps.subsets[0].addresses] == [3, 1, 1]
    [event] = [s for s in actions.steps if isinstance(s, EmitEvent)]
    assert event.reason == REASON_BAD_WEIGHT and 'w="x"' in event.message and "0-1000" in event.message
    # round-robin services ignore the label
    plain = created(endpoints_for(service(), pods, ONLINE, None).steps)
    assert {a.weight for a in plain.subsets[0].addresses} == {1}


def test_no_write_when_nothing_changed_and_an_update_keeps_the_version() -> None:
    pods = [pod("a", "10.77.1.2")]
    first = created(endpoints_for(service(), pods, ONLINE, None).steps)
    stored = msgspec.structs.replace(first, metadata=msgspec.structs.replace(first.metadata, resource_version="7"))
    assert endpoints_for(service(), pods, ONLINE, stored).steps == ()
    changed = endpoints_for(service(), [pod("a", "10.77.1.2", ready=False)], ONLINE, stored).steps
    [step] = changed
    assert isinstance(step, Update) and isinstance(step.obj, Endpoints)
    assert step.obj.metadata.resource_version == "7" and step.obj.subsets[0].addresses == []


def test_a_service_without_selector_is_left_to_its_user() -> None:
    assert endpoints_for(service(selector={}), [pod("a", "10.77.1.2")], ONLINE, None).steps == ()


def _addresses(store: MemStore) -> list[str]:
    found = [e for e in store.objects("Endpoints") if isinstance(e, Endpoints)]
    return [a.ip for e in found for s in e.subsets for a in s.addresses]


def test_runner_tracks_readiness_node_loss_and_service_deletion() -> None:
    async def main() -> None:
        clock = FakeClock()
        store = MemStore(clock)
        controller = Controller(EndpointsController(), store, clock, workers=1)
        async with running([controller]):
            await store.create(online_node("n1"))
            await store.create(online_node("n2"))
            for name, ip, node in (("a", "10.77.1.2", "n1"), ("b", "10.77.2.2", "n2")):
                await store.create(pod(name, ip, node=node))
            await store.create(service())
            await eventually(lambda: _addresses(store) == ["10.77.1.2", "10.77.2.2"], what="two addresses")
            writes = store.writes[("MODIFIED", "Endpoints")]

            a = next(p for p in store.objects("Pod") if isinstance(p, Pod) and p.metadata.name == "a")
            await store.update(msgspec.structs.replace(a, status=msgspec.structs.replace(
                a.status, conditions=[Condition(type="Ready", status="False")])))
            await eventually(lambda: _addresses(store) == ["10.77.2.2"], what="unready pod removed")

            n2 = next(n for n in store.objects("Node") if isinstance(n, Node) and n.metadata.name == "n2")
            await store.update(msgspec.structs.replace(n2, status=msgspec.structs.replace(
                n2.status, phase=NodePhase.OFFLINE)))
            await eventually(lambda: _addresses(store) == [], what="offline node's pod removed")
            assert store.writes[("MODIFIED", "Endpoints")] == writes + 2  # one write per change, no churn

            await store.delete("Service", "default", "web")
            await eventually(lambda: store.objects("Endpoints") == [], what="endpoints deleted with the service")

    asyncio.run(asyncio.wait_for(main(), 20))


def test_endpoints_of_someone_else_survive_a_missing_service() -> None:
    cache_eps = Endpoints(metadata=ObjectMeta(name="ext", namespace="default"))
    ours = Endpoints(metadata=ObjectMeta(name="web", namespace="default", resource_version="4", owner_references=[
        OwnerReference(kind="Service", name="web", uid="svc-uid", controller=True)]))

    class _Cache:
        def __init__(self, obj: Endpoints) -> None:
            self.obj = obj

        def get(self, key: tuple[str, str, str]) -> Endpoints | None:
            return self.obj if key[0] == "Endpoints" else None

    controller = EndpointsController()
    assert controller.reconcile(("Service", "default", "ext"), _Cache(cache_eps), None).steps == ()  # type: ignore[arg-type]
    [step] = controller.reconcile(("Service", "default", "web"), _Cache(ours), None).steps  # type: ignore[arg-type]
    assert step == Delete("Endpoints", "default", "web", "4")
