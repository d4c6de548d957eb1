"""Cluster DNS as a pod sees it: a test "host" (network namespace) runs ``NodeDns`` on its pod network's
gateway (started before the bridge exists), a pod wired by shoal.net runs a real runc container with
the generated resolv.conf bind-mounted at /etc/resolv.conf, and busybox ``nslookup`` in it resolves a
Service by its full name and by its short name through the search path, an SRV name, and an outside
name through the host's resolver (a fake one on the host's 127.0.0.1:53)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.net.netlab import ROOT, Lab, sh
from tests.integration.runtime.runtimelab import Env, env  # noqa: F401  (the runc fixture)

from shoal.agent.dns import resolv_conf_mount, write_pod_resolv_conf
from shoal.model.pod import ContainerState
from shoal.runtime import ContainerSpec, NamespaceJoin

HOST_CIDR = "10.77.9.0/24"
GATEWAY = "10.77.9.1"

SERVER = """
import asyncio, json, signal, sys
from pathlib import Path
from shoal.agent.dns import HostResolvers, NodeDns
from tests.integration.net.test_dns_server import FakeUpstream

async def main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    fake = FakeUpstream()
    upstream, _ = await loop.create_datagram_endpoint(lambda: fake, local_addr=("127.0.0.1", 53))
    services = {("default", "web"): {"apiVersion": "shoal/v1", "kind": "Service",
                                     "metadata": {"name": "web", "namespace": "default"},
                                     "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}}
    node = NodeDns(services, {}, upstreams=HostResolvers(Path(args["resolv"])), debounce=0.0)
    node.set_pod_cidr(args["cidr"])
    task = asyncio.create_task(node.run(stop))
    while node.serving is None:
        await asyncio.sleep(0.01)
    Path(args["ready"]).write_text(json.dumps(node.serving))
    await task
    upstream.close()
    Path(args["asked"]).write_text(json.dumps(fake.asked))

asyncio.run(main(json.loads(sys.argv[1])))
"""


def wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, f"the DNS server exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"the DNS server did not start:\n{log.read_text()}"
        time.sleep(0.05)


async def run_container(lab_env: Env, netns: str, resolv: Path, script: str) -> list[str]:
    spec = ContainerSpec(id="dns-client", name="client", pod_uid="pod-client", pod_name="client",
                         lower_dirs=(str(lab_env.layer),), command=("sh", "-c", script),
                         mounts=(resolv_conf_mount(resolv),), join_namespaces=(NamespaceJoin("network", netns),))
    await lab_env.driver.create(spec)
    info = await lab_env.driver.start(spec.id)
    async with asyncio.timeout(60):
        while info.state is not ContainerState.STOPPED or info.exit_code is None:
            await asyncio.sleep(0.1)
            info = await lab_env.driver.inspect(spec.id)
    lines = [line.message async for line in lab_env.driver.logs(spec.id)]
    await lab_env.driver.remove(spec.id)
    return lines


def test_a_runc_pod_resolves_services_and_outside_names_through_the_node_dns(lab: Lab, env: Env,  # noqa: F811
                                                                             tmp_path: Path) -> None:
    host = lab.host("node", "198.18.77.1", HOST_CIDR)
    host_resolv = tmp_path / "host-resolv.conf"
    host_resolv.write_text("nameserver 127.0.0.1\n")
    ready, asked, log = tmp_path / "dns-ready", tmp_path / "dns-asked", tmp_path / "dns.log"
    args = {"resolv": str(host_resolv), "cidr": HOST_CIDR, "ready": str(ready), "asked": str(asked)}
    with log.open("wb") as out:
        server = subprocess.Popen(["nsenter", f"--net={host.netns}", sys.executable, "-c", SERVER, json.dumps(args)],
                                  cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    lab.processes.append(server)
    wait_for(ready, server, log)
    assert json.loads(ready.read_text()) == [GATEWAY, 53]
    assert "shoal0" not in host.links()  # listening on the gateway before the bridge has it (IP_FREEBIND)

    host.ctl("conflist", cidr=HOST_CIDR)
    pod = host.ctl("setup", uid="pod-client", name="client")
    assert pod["gateway"] == GATEWAY
    resolv = write_pod_resolv_conf(tmp_path / "pods" / "pod-client", "default", GATEWAY)
    (env.layer / "bin" / "nslookup").symlink_to("busybox")

    script = ("cat /etc/resolv.conf; echo ---; nslookup web.default.svc.shoal; echo ---; nslookup web; echo ---; "
              "nslookup -type=srv _http._tcp.web.default.svc.shoal; echo ---; nslookup www.example.com; echo ---")
    lines = asyncio.run(run_container(env, pod["netns_path"], resolv, script))
    parts = "\n".join(lines).split("---")
    assert parts[0].split("\n") == ["nameserver 10.77.9.1", "search default.svc.shoal svc.shoal shoal",
                                    "options ndots:5", ""]
    assert "Name:\tweb.default.svc.shoal\nAddress: 10.96.0.10" in parts[1], parts[1]
    assert "Name:\tweb.default.svc.shoal\nAddress: 10.96.0.10" in parts[2], parts[2]  # the search path
    assert "service = 0 100 80 web.default.svc.shoal" in parts[3], parts[3]
    assert "Name:\twww.example.com\nAddress: 192.0.2.80" in parts[4], parts[4]
    assert f"Server:\t\t{GATEWAY}" in parts[1]

    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=20) == 0, log.read_text()
    forwarded = json.loads(asked.read_text())
    assert "www.example.com." in forwarded and [n for n in forwarded if "shoal" in n] == []
    host.ctl("teardown", uid="pod-client")
    assert "10.77.9.1" not in sh("ss", "-lnu", netns=host.netns)
