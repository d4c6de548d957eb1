"""Service VIPs for real: a test "host" (network namespace) with shoal's CNI bridge and four pods
wired by shoal.net; three pods run ``busybox httpd`` answering their own name, the fourth is the
client. Endpoints come from the endpoints controller's pure function, the nft table from
``NftServiceTable`` applied inside the host. Every request is one ``timeout 2 busybox wget``."""

from __future__ import annotations

import subprocess
import time
from collections import Counter

from tests.integration.net.netlab import BUSYBOX, Host, Lab, sh

from shoal.controllers.actions import Create
from shoal.controllers.endpoints import endpoints_for
from shoal.model import Condition, Container, NodePhase, ObjectMeta, Pod, PodPhase, PodSpec, PodStatus, Service
from shoal.model.endpoints import Endpoints
from shoal.model.pod import ContainerPort
from shoal.model.service import LoadBalancing, ServicePort, ServiceSpec, ServiceType
from shoal.net.services import NftServiceTable

VIP = "10.96.0.10"
BACKENDS = ("web-1", "web-2", "web-3")
WEIGHTS = {"web-1": "3", "web-2": "1", "web-3": "1"}


def get(netns: str, url: str) -> str:
    """One request; the answer text, or "" when it failed (refused, unreachable, timed out)."""
    done = subprocess.run(["nsenter", f"--net={netns}", "timeout", "2", BUSYBOX, "wget", "-qO-", url],
                          capture_output=True, text=True, timeout=10)
    return done.stdout.strip() if done.returncode == 0 else ""


def service(*, weighted: bool = False, affinity: bool = False) -> Service:
    return Service(
        metadata=ObjectMeta(name="web", namespace="default", uid="svc-web"),
        spec=ServiceSpec(type=ServiceType.NODE_PORT, selector={"app": "web"}, cluster_ip=VIP,
                         ports=[ServicePort(name="http", port=80, target_port="http", node_port=30080)],
                         session_affinity="ClientIP" if affinity else "None",
                         load_balancing=LoadBalancing(policy="Weighted", weight_label="weight") if weighted else None))


def pod(name: str, ip: str, *, ready: bool = True) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace="default", uid=f"uid-{name}",
                                   labels={"app": "web", "weight": WEIGHTS[name]}),
               spec=PodSpec(node_name="a", containers=[Container(
                   name="httpd", image="busybox", ports=[ContainerPort(name="http", container_port=8080)])]),
               status=PodStatus(phase=PodPhase.RUNNING, pod_ip=ip,
                                conditions=[Condition(type="Ready", status="True" if ready else "False")]))


def endpoints(svc: Service, pods: list[Pod]) -> Endpoints:
    [step] = endpoints_for(svc, pods, {"a": NodePhase.ONLINE}, None).steps
    assert isinstance(step, Create) and isinstance(step.obj, Endpoints)
    return step.obj


def start_backends(lab: Lab, host: Host) -> tuple[dict[str, str], str]:
    """Three httpd pods and a client pod on ``host``; returns {name: ip} and the client's netns."""
    ips: dict[str, str] = {}
    for name in BACKENDS:
        wired = host.ctl("setup", uid=f"pod-{name}", name=name)
        root = lab.base / "www" / name
        root.mkdir(parents=True)
        (root / "index.html").write_text(name + "\n")
        lab.spawn(wired["netns_path"], BUSYBOX, "httpd", "-f", "-p", "8080", "-h", str(root))
        ips[name] = wired["ip"]
    client = host.ctl("setup", uid="pod-client", name="client")["netns_path"]
    for name, ip in ips.items():
        for _ in range(50):
            if get(client, f"http://{ip}:8080/") == name:
                break
        else:
            raise AssertionError(f"httpd in {name} never answered on {ip}:8080")
    return ips, client


def table_text(host: Host) -> str:
    return sh("nft", "list", "table", "ip", "shoal", netns=host.netns)


def test_cluster_ip_round_robin_weighted_removal_and_node_port(lab: Lab) -> None:
    host = lab.host("a", "198.18.77.1", "10.77.1.0/24")
    outside = lab.host("b", "198.18.77.2", "10.77.2.0/24")
    lab.connect(host, outside)
    host.ctl("conflist", cidr=host.pod_cidr)
    ips, client = start_backends(lab, host)
    pods = [pod(name, ip) for name, ip in ips.items()]
    table = NftServiceTable(command_prefix=("nsenter", f"--net={host.netns}"))
    try:
        # round-robin: each new connection goes to the next backend, in a fixed cycle
        svc = service()
        assert table.sync([svc], [endpoints(svc, pods)]) == []
        answers = [get(client, f"http://{VIP}/") for _ in range(9)]
        assert set(answers) == set(BACKENDS), answers
        assert answers[:3] * 3 == answers, f"not a round-robin cycle: {answers}"

        # a second sync with the same input leaves the same table
        before = table_text(host)
        table.sync([svc], [endpoints(svc, pods)])
        assert table_text(host) == before

        # NodePort: from another host, on this host's address
        from_outside = [get(str(outside.netns), f"http://{host.address}:30080/") for _ in range(6)]
        assert set(from_outside) == set(BACKENDS), from_outside

        # weighted 3:1:1 over 50 requests: numgen inc walks a fixed 5-slot sequence, so the split is exact
        svc = service(weighted=True)
        table.sync([svc], [endpoints(svc, pods)])
        counts = Counter(get(client, f"http://{VIP}/") for _ in range(50))
        assert counts == {"web-1": 30, "web-2": 10, "web-3": 10}, counts

        # web-3 turns unready: the re-synced table never sends to it again
        svc = service()
        pods[2] = pod("web-3", ips["web-3"], ready=False)
        eps = endpoints(svc, pods)
        assert [a.ip for a in eps.subsets[0].not_ready_addresses] == [ips["web-3"]]
        table.sync([svc], [eps])
        answers = [get(client, f"http://{VIP}/") for _ in range(8)]
        assert sorted(set(answers)) == ["web-1", "web-2"], answers
        assert ips["web-3"] not in table_text(host), "the unready endpoint's chain was left behind"

        # ClientIP affinity: one client sticks to one backend
        svc = service(affinity=True)
        table.sync([svc], [endpoints(svc, pods)])
        sticky = [get(client, f"http://{VIP}/") for _ in range(6)]
        assert len(set(sticky)) == 1 and sticky[0] in ("web-1", "web-2"), sticky

        # no ready endpoint: refused at once rather than hanging
        table.sync([svc], [endpoints(svc, [pod(n, ips[n], ready=False) for n in BACKENDS])])
        started = time.monotonic()
        assert get(client, f"http://{VIP}/") == ""
        assert time.monotonic() - started < 1.5, "a service without endpoints should refuse, not time out"
    finally:
        table.remove()
    assert "shoal" not in sh("nft", "list", "tables", netns=host.netns)
    assert get(client, f"http://{VIP}/") == ""
