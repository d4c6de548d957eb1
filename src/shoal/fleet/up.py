"""``shoal cluster up``: lay out a fleet, wire it, start the server and the agents, wait until every
node is Online, and write the admin config where the CLI looks.

Idempotent: running it again on a running fleet starts only what is not running. Progress goes to
``say`` (the CLI prints it). It must not remove anything (``down`` does).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

from shoal.fleet import hostnet, procs
from shoal.fleet.layout import FleetLayout, fleet_layout, free_subnet

__all__ = ["FleetError", "up", "write_config"]

SERVER_WAIT = 60.0
Say = Callable[[str], None]


class FleetError(RuntimeError):
    """A fleet that did not come up; the message says which part and where its log is."""


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise FleetError(f"{', '.join(missing)} not found: install them (Debian: apt-get install runc conmon "
                         "util-linux nftables containernetworking-plugins) or run `make install`")


def _layout(name: str, nodes: int, root: Path) -> FleetLayout:
    state = root / name
    if (state / "fleet.json").exists():
        existing = FleetLayout.load(state)
        if len(existing.nodes) != nodes:
            raise FleetError(f'fleet "{name}" already exists with {len(existing.nodes)} nodes; run `shoal cluster '
                             f"down --name {name}` first to make one with {nodes}")
        return existing
    return fleet_layout(name, nodes, root, free_subnet(hostnet.host_networks()), port=_free_port("127.0.0.1"))


def _wait(check: Callable[[], bool], alive: Callable[[], bool], timeout: float, what: str, log: Path | str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise FleetError(f"{what}: it exited; see {log}")
        time.sleep(0.2)
    raise FleetError(f"{what} within {timeout:.0f} s; see {log}")


def _server_ready(fleet: FleetLayout) -> bool:
    from shoal.client import Client, ClientConfig, ClientError

    if not fleet.admin_config.exists():
        return False
    try:
        with Client(ClientConfig.load(fleet.admin_config), timeout=2) as client:
            client.version()
    except (ClientError, OSError, ValueError):
        return False
    return True


def _online(fleet: FleetLayout) -> list[str]:
    from shoal.client import Client, ClientConfig, ClientError

    try:
        with Client(ClientConfig.load(fleet.admin_config), timeout=5) as client:
            items, _ = client.list("nodes", None, label_selector=f"shoal.io/fleet={fleet.name}")
    except (ClientError, OSError):
        return []
    return [n["metadata"]["name"] for n in items if (n.get("status") or {}).get("phase") == "Online"]


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def write_config(fleet: FleetLayout, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(fleet.admin_config, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def up(name: str, nodes: int, root: Path, config: Path, say: Say, timeout: float = 90.0,
       agent_args: tuple[str, ...] = (), labels: str = "") -> FleetLayout:
    _require("runc", "conmon", "nsenter", "nft")
    fleet = _layout(name, nodes, root)
    for directory in (fleet.state_dir, fleet.run_dir):
        Path(directory).mkdir(parents=True, exist_ok=True)
    fleet.save()
    hostnet.wire_bridge(fleet)
    say(f"network    bridge {fleet.bridge} {fleet.server_address}/{fleet.subnet.split('/')[1]}")
    pid = procs.start_server(fleet)
    _wait(lambda: _server_ready(fleet), lambda: procs.alive(fleet.server_pid_file, str(fleet.server_data_dir))
          is not None, SERVER_WAIT, "the server did not answer", fleet.server_log)
    say(f"server     {fleet.server_url} (pid {pid}, data in {fleet.server_data_dir})")
    token = (fleet.server_data_dir / "node-token").read_text().strip()
    for node in fleet.nodes:
        hostnet.add_node(fleet, node)
        pid = procs.start_agent(fleet, node, token, agent_args, labels)
        say(f"node       {node.name}: netns {node.netns}, address {node.address} (agent pid {pid})")
    deadline = time.monotonic() + timeout
    wanted = {n.name for n in fleet.nodes}
    while not wanted <= set(_online(fleet)):
        dead = [n for n in fleet.nodes if procs.alive(Path(n.pid_file), n.data_dir) is None]
        if dead:
            raise FleetError(f"the agent of {dead[0].name} exited: {_last_line(Path(dead[0].log))}\n"
                             f"  (its log: {dead[0].log})")
        if time.monotonic() > deadline:
            missing = sorted(wanted - set(_online(fleet)))
            raise FleetError(f"nodes {', '.join(missing)} not Online within {timeout:.0f} s; see "
                             f"{Path(fleet.state_dir) / 'node-N.log'}")
        time.sleep(0.3)
    write_config(fleet, config)
    say(f"ready      {len(fleet.nodes)} node(s) Online; admin config in {config}")
    return fleet
