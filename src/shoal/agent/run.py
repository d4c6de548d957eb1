"""The agent's command line and process lifecycle: parse options, join (once), run until SIGTERM.

Options are parsed with argparse so the agent process never loads typer (which converts
options with pydantic) or rich; ``shoal.agent.cli`` mounts this under ``shoal agent`` and
``python -m shoal.agent`` calls it directly. Heavy modules (OCI driver, image package,
cryptography) load only when the agent runs. It must not import server-side layers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main", "parser"]

DEFAULT_EVICTION_HARD = "memory.available<100Mi,nodefs.available<5%"  # parsed by shoal.agent.eviction

log = logging.getLogger("shoal.agent")
_JOIN_RETRY_MAX = 30.0
_REEXEC = -1

EXAMPLE = """example:
  shoal agent --server https://10.0.0.1:6443 --token "$(cat /var/lib/shoal/node-token)" \\
      --data-dir /var/lib/shoal-agent --labels shoal.io/zone=plant-a

The token is needed only the first time; restarted on the same --data-dir the agent is the same
node and adopts the containers that kept running.

as a service:
  shoal agent install --server URL --token TOKEN [options]   (see `shoal agent install --help`)
  shoal agent uninstall [--data-dir DIR] [--yes]             (see `shoal agent uninstall --help`)
"""


def parser(prog: str = "shoal agent") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Run the node agent: join the cluster, register the Node and run "
                                            "the pods the server assigns to it.")
    env = os.environ.get
    p.add_argument("--server", default=env("SHOAL_SERVER", ""),
                   help="the server URL, e.g. https://10.0.0.1:6443 (env SHOAL_SERVER)")
    p.add_argument("--token", default=env("SHOAL_TOKEN", ""),
                   help="the join token from the server's data dir (node-token); only needed the first time "
                        "(env SHOAL_TOKEN)")
    p.add_argument("--data-dir", default="/var/lib/shoal-agent",
                   help="identity, cache, containers and images of this node (default: %(default)s)")
    p.add_argument("--name", default="", help="node name (default: the host name)")
    p.add_argument("--labels", default="", help="node labels, e.g. shoal.io/zone=plant-a,tier=edge")
    p.add_argument("--runc-root", default="/run/shoal/runc", help="runc's state dir (default: %(default)s)")
    p.add_argument("--cgroup-parent", default="/shoal", help="parent cgroup of all pods (default: %(default)s)")
    p.add_argument("--image-root", default="", help="image content store (default: DATA_DIR/images)")
    p.add_argument("--zone-probe", action="append", default=[], metavar="ZONE=HOST:PORT",
                   help="measure TCP connect RTT to ZONE through HOST:PORT every 10 s and report it in the "
                        "Node's status.rttMs (repeatable), e.g. --zone-probe cloud=203.0.113.9:443")
    p.add_argument("--no-pod-network", action="store_true",
                   help="do not wire pods with CNI: each pod gets a network namespace with loopback only")
    p.add_argument("--no-services", action="store_true",
                   help="do not program Service ClusterIPs and NodePorts (nftables table ip shoal) on this node")
    p.add_argument("--bridge", default="shoal0", help="the pods' bridge in the default conflist (default: %(default)s)")
    p.add_argument("--overlay", default="auto", choices=("auto", "host-gw", "vxlan"),
                   help="how pod traffic reaches other nodes: host-gw routes via their addresses (one L2 segment), "
                        "vxlan (device shoal.vx, VNI 7777, UDP 8472), or auto: host-gw to nodes on a directly "
                        "connected subnet, VXLAN to nodes behind a router (default: %(default)s)")
    p.add_argument("--netns-dir", default="/run/shoal/netns",
                   help="where pod network namespaces are mounted; one dir per agent (default: %(default)s)")
    p.add_argument("--eviction-hard", default=DEFAULT_EVICTION_HARD, metavar="SIGNAL<VALUE,...",
                   help="evict pods (BestEffort first, Guaranteed last) while the node is below a threshold: "
                        "memory.available (MemAvailable) and nodefs.available (free space of --data-dir), "
                        "as a size or a percentage; \"\" turns eviction off (default: %(default)s)")
    p.add_argument("--no-dns", action="store_true",
                   help="serve no cluster DNS to pods (they keep the image's /etc/resolv.conf)")
    p.add_argument("--cluster-domain", default="shoal",
                   help="the cluster DNS domain: <svc>.<ns>.svc.DOMAIN (default: %(default)s)")
    p.add_argument("--metrics-bind", default="",
                   help="serve Prometheus metrics (cAdvisor-named container series, node series) on HOST:PORT, "
                        'e.g. 127.0.0.1:10249 (default: "", none; costs ~1.5 MB of RSS when on)')
    p.add_argument("--metrics-push-interval", type=float, default=10.0,
                   help="seconds between usage samples pushed to the server for `shoal top`; 0 pushes none "
                        "(default: %(default)s)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def _tune_malloc() -> None:
    """Keep glibc from hoarding freed memory: fixed trim/mmap thresholds (128 KiB), 2 arenas.
    Worth ~4 MB of RSS on a 512 MiB gateway; a no-op where the C library is not glibc."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(None).mallopt
        for param, value in ((-1, 128 * 1024), (-3, 128 * 1024), (-8, 2)):  # TRIM_THRESHOLD, MMAP_THRESHOLD,
            mallopt(param, value)                                             # ARENA_MAX


def main(argv: Sequence[str], prog: str = "shoal agent") -> int:
    """Run the agent with command line ``argv``; the process exit code (2 = usage, 1 = refused).
    ``install ...`` and ``uninstall ...`` run those subcommands instead."""
    if argv and argv[0] == "install":
        from shoal.agent.install import install_main

        return install_main(argv[1:], f"{prog} install")
    if argv and argv[0] == "uninstall":
        from shoal.agent.uninstall import uninstall_main

        return uninstall_main(argv[1:], f"{prog} uninstall")
    _tune_malloc()
    # httpx imports its command line (click, rich, pygments: ~4 MB) when they are installed, as they
    # are for the CLI; a None entry makes that import fail, which httpx tolerates.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from shoal.agent.edgefacts import parse_zone_probes
    from shoal.agent.nodeinfo import parse_labels

    args = parser(prog).parse_args(list(argv))
    from shoal.agent.eviction import parse_thresholds

    if not args.server.startswith(("https://", "http://")):
        print(f"error: --server must be a URL like https://10.0.0.1:6443 (got {args.server!r})", file=sys.stderr)
        return 2
    try:
        labels = parse_labels(args.labels)
        zone_probes = parse_zone_probes(args.zone_probe)
        eviction_hard = parse_thresholds(args.eviction_hard, "--eviction-hard")
        if args.metrics_bind:
            from shoal.agent.metrics import parse_bind

            parse_bind(args.metrics_bind)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    code = asyncio.run(_main(args.server, args.token, Path(args.data_dir).absolute(), args.name, labels,
                             Path(args.runc_root), args.cgroup_parent,
                             Path(args.image_root) if args.image_root else None, zone_probes,
                             NetOptions(not args.no_pod_network, not args.no_services, args.bridge,
                                        Path(args.netns_dir).absolute(), not args.no_dns, args.cluster_domain,
                                        args.overlay),
                             eviction_hard=eviction_hard, metrics=(args.metrics_bind, args.metrics_push_interval)))
    if code == _REEXEC:
        # Joining loaded cryptography (~10 MB) for one CSR; a fresh process on the same data dir
        # is the same node without it. Same PID, so supervisors do not notice.
        log.info("joined the cluster; restarting the agent process to release join-time memory")
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return code


async def _identity(stop: asyncio.Event, server: str, token: str, data_dir: Path, name: str) -> object:
    from shoal.agent.identity import JoinError, JoinRefused, load_identity, load_or_join

    if load_identity(data_dir) is None and not token:
        raise JoinRefused(f"{data_dir} has no node identity yet: pass --token with the server's join token "
                          "(node-token in its data dir)")
    delay = 0.5
    while not stop.is_set():
        try:
            return await asyncio.to_thread(load_or_join, data_dir, server, token, name or None)
        except JoinRefused:
            raise
        except JoinError as exc:
            delay = min(delay * 2, _JOIN_RETRY_MAX)
            log.warning("%s; retrying in %gs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None


@dataclass(frozen=True, slots=True)
class NetOptions:
    pod_network: bool = True
    services: bool = True
    bridge: str = "shoal0"
    netns_dir: Path = Path("/run/shoal/netns")
    dns: bool = True
    cluster_domain: str = "shoal"
    overlay: str = "auto"  # shoal.net.vxlan.Overlay


def _node_network(node: str, data_dir: Path, options: NetOptions, address: str = "") -> object:
    """The node's pod networking (``NodeNetwork``: CNI, routes, services, NetworkPolicies, cluster DNS),
    or None with ``--no-pod-network``."""
    from shoal.agent.netwatch import NodeNetwork
    from shoal.agent.policywatch import NodePolicies
    from shoal.net.conflist import write_conflist
    from shoal.net.policy import NftPolicyTable
    from shoal.net.sandbox import PodNetwork, net_dir
    from shoal.net.services import NftServiceTable
    from shoal.net.vxlan import Overlay, OverlayRoutes

    if not options.pod_network:
        return None
    net = PodNetwork(data_dir, netns_dir=options.netns_dir)
    ipam_dir = net_dir(data_dir) / "ipam"

    def write(pod_cidr: str) -> bool:
        return write_conflist(net.conflist_path, pod_cidr, ipam_dir, bridge=options.bridge)

    network = NodeNetwork(node, net, net.conflist_path, write, routes=OverlayRoutes(Overlay(options.overlay), address),
                          services=NftServiceTable() if options.services else None,
                          policies=NodePolicies(node, NftPolicyTable()))
    if options.dns:
        from shoal.agent.dns import NodeDns

        network.dns = NodeDns(network.service_objects, network.endpoint_objects, domain=options.cluster_domain)
    return network


async def _main(server: str, token: str, data_dir: Path, name: str, labels: dict[str, str], runc_root: Path,
                cgroup_parent: str, image_root: Path | None, zone_probes: dict[str, tuple[str, int]],
                net_options: NetOptions, eviction_hard: tuple[Any, ...] = (),
                metrics: tuple[str, float] = ("", 10.0)) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from shoal.agent.agent import Agent, AgentOptions
    from shoal.agent.cache import PodCache
    from shoal.agent.dns import NodeDns
    from shoal.agent.identity import JoinRefused, NodeIdentity, renew_loop
    from shoal.agent.images import ImageService
    from shoal.agent.netwatch import NodeNetwork
    from shoal.agent.nodeinfo import node_manifest, probe_facts
    from shoal.agent.pods import PodContext
    from shoal.runtime.oci import OciDriver
    from shoal.runtime.wasm import RuntimeRouter, WasmDriver

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2, thread_name_prefix="agent-io"))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        identity = await _identity(stop, server, token, data_dir, name)
    except JoinRefused as exc:
        log.error("%s", exc)
        return 1
    if not isinstance(identity, NodeIdentity):
        return 0
    if "cryptography" in sys.modules:  # this process just joined
        return _REEXEC
    facts = probe_facts(data_dir, server)
    cache = PodCache(data_dir / "agent.db")
    oci = OciDriver(root_dir=data_dir / "containers", runc_root=runc_root, cgroup_parent=cgroup_parent)
    # wasm pods run in one host process per node (started on first use), OCI pods under runc + conmon
    driver = RuntimeRouter(oci, WasmDriver(root_dir=data_dir / "wasm"), runtime_of=lambda spec: spec.runtime)
    client = identity.client_config(server)
    ctx = PodContext(driver=driver, images=ImageService(image_root or data_dir / "images", server=client),
                     cache=cache, pods_dir=data_dir / "pods", host_ip=facts.address, publish=lambda uid: None)
    options = AgentOptions(node_name=identity.name, client=client,
                           node_manifest=node_manifest(identity.name, facts, labels), labels=labels,
                           zone_probes=zone_probes, eviction_hard=eviction_hard, metrics_bind=metrics[0],
                           metrics_push_interval=metrics[1], cgroup_parent=cgroup_parent)
    network = _node_network(identity.name, data_dir, net_options, facts.address)
    if isinstance(network, NodeNetwork) and isinstance(network.dns, NodeDns):
        ctx.dns_mount = network.dns.pod_mount
    agent = Agent(options, ctx, network if isinstance(network, NodeNetwork) else None)
    log.info("node %s: agent running (data dir %s)", identity.name, data_dir)
    renewing = dataclasses.replace(identity, server=server.rstrip("/"))  # renew where the agent talks
    pid_file = data_dir / "agent.pid"  # how `shoal agent uninstall` finds the agent without systemd
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        async with asyncio.TaskGroup() as group:  # the certificate renews itself next to the agent
            group.create_task(renew_loop(renewing, stop), name="certificate renewal")
            await agent.run(stop)
            stop.set()
    finally:
        cache.close()
        with contextlib.suppress(OSError):
            pid_file.unlink()
    log.info("node %s: agent stopped; containers keep running", identity.name)
    return 0
