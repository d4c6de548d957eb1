"""Where a local fleet's parts live: names, addresses, directories and ports, saved as fleet.json.

A fleet called NAME has a state dir (``$SHOAL_CLUSTER_ROOT/NAME``, default /var/lib/shoal/clusters),
a run dir for runc state and pod netns mounts, one bridge on this machine with a private /24
(172.31.X.0/24, the first X no address or route of this machine uses), the server on the bridge's
first address, and per node a named network namespace ``shoal-NAME-I`` (``ip netns exec`` enters
it) with a veth on the bridge, its own data dir, runc root, netns dir and cgroup parent. Pure: it
computes and (de)serializes; it must not touch the host.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["FleetLayout", "LayoutError", "NodeLayout", "default_root", "fleet_layout"]

ROOT_ENV = "SHOAL_CLUSTER_ROOT"
RUN_ROOT = Path("/run/shoal/clusters")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")
MAX_NODES = 50


class LayoutError(ValueError):
    """A fleet name or size that cannot be laid out; the message names the option."""


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "/var/lib/shoal/clusters")


@dataclass(frozen=True, slots=True)
class NodeLayout:
    name: str
    netns: str
    veth: str
    address: str
    data_dir: str
    runc_root: str
    netns_dir: str
    cgroup_parent: str
    log: str
    pid_file: str


@dataclass(frozen=True, slots=True)
class FleetLayout:
    name: str
    state_dir: str
    run_dir: str
    subnet: str
    bridge: str
    server_address: str
    port: int
    nodes: tuple[NodeLayout, ...]

    @property
    def server_url(self) -> str:
        return f"https://{self.server_address}:{self.port}"

    @property
    def server_data_dir(self) -> Path:
        return Path(self.state_dir) / "server"

    @property
    def server_pid_file(self) -> Path:
        return Path(self.state_dir) / "server.pid"

    @property
    def server_log(self) -> Path:
        return Path(self.state_dir) / "server.log"

    @property
    def admin_config(self) -> Path:
        return self.server_data_dir / "admin.yaml"

    def save(self) -> None:
        path = Path(self.state_dir) / "fleet.json"
        tmp = path.with_name(".fleet.json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, state_dir: Path) -> FleetLayout:
        data = json.loads((state_dir / "fleet.json").read_text())
        return cls(**{**data, "nodes": tuple(NodeLayout(**n) for n in data["nodes"])})


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise LayoutError(f'--name "{name}" is not a valid fleet name: use 1-20 lowercase letters, digits and '
                          "'-', starting and ending with a letter or digit (e.g. --name dev)")
    return name


def free_subnet(used: list[str]) -> ipaddress.IPv4Network:
    """The first 172.31.X.0/24 that overlaps none of ``used`` (this machine's addresses and routes)."""
    taken = [ipaddress.ip_network(u, strict=False) for u in used]
    for third in range(256):
        net = ipaddress.IPv4Network(f"172.31.{third}.0/24")
        if not any(net.overlaps(t) for t in taken if t.version == 4 and t.prefixlen > 0):
            return net
    raise LayoutError("no free 172.31.X.0/24 for the fleet's bridge: every one is in use on this machine")


def fleet_layout(name: str, nodes: int, root: Path, subnet: ipaddress.IPv4Network, port: int) -> FleetLayout:
    check_name(name)
    if not 1 <= nodes <= MAX_NODES:
        raise LayoutError(f"--nodes {nodes}: a local fleet has 1 to {MAX_NODES} nodes")
    tag = hashlib.sha256(name.encode()).hexdigest()[:6]
    state = root / name
    run = RUN_ROOT / name
    hosts = list(subnet.hosts())
    members = tuple(
        NodeLayout(name=f"{name}-{i}", netns=f"shoal-{name}-{i}", veth=f"shv{tag}{i}", address=str(hosts[9 + i]),
                   data_dir=str(state / f"node-{i}"), runc_root=str(run / f"node-{i}" / "runc"),
                   netns_dir=str(run / f"node-{i}" / "netns"), cgroup_parent=f"/shoal-{name}-{i}",
                   log=str(state / f"node-{i}.log"), pid_file=str(state / f"node-{i}.pid"))
        for i in range(1, nodes + 1))
    return FleetLayout(name=name, state_dir=str(state), run_dir=str(run), subnet=str(subnet), bridge=f"shc{tag}",
                       server_address=str(hosts[0]), port=port, nodes=members)
