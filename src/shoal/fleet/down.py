"""``shoal cluster down``: stop a local fleet and remove everything ``up`` made.

Per node: the agent stops, then ``shoal agent uninstall`` runs inside the node's namespace (its
containers, conmons, overlay mounts, pod network namespaces, cgroups, nft table and data dir go),
then the namespace itself. Then the server, the bridge, the fleet's state and run dirs, and the
admin config ``up`` wrote if it is still this fleet's. Parts already gone are skipped, so a
half-made fleet comes down too. It must not start anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from shoal.fleet import hostnet, procs
from shoal.fleet.layout import FleetLayout, NodeLayout, check_name

__all__ = ["down"]

UNINSTALL_TIMEOUT = 120.0


def _uninstall(node: NodeLayout) -> str:
    argv = [sys.executable, "-m", "shoal.agent", "uninstall", "--yes", "--data-dir", node.data_dir,
            "--runc-root", node.runc_root, "--netns-dir", node.netns_dir, "--cgroup-parent", node.cgroup_parent]
    if hostnet.netns_exists(node.netns):
        argv = ["nsenter", f"--net=/run/netns/{node.netns}", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=UNINSTALL_TIMEOUT)
    if done.returncode != 0:
        raise OSError(f"uninstalling node {node.name} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def down(name: str, root: Path, config: Path, say: Callable[[str], None]) -> list[str]:
    """Remove fleet ``name``; returns what was removed ([] when there is no such fleet)."""
    state = root / check_name(name)
    if not (state / "fleet.json").exists():
        return []
    fleet = FleetLayout.load(state)
    removed: list[str] = []
    for node in fleet.nodes:
        if procs.stop(Path(node.pid_file), node.data_dir):
            removed.append(f"agent {node.name}")
        if Path(node.data_dir).exists() or Path(node.runc_root).exists():
            _uninstall(node)
            removed.append(f"containers, mounts and cgroups of {node.name}")
        if hostnet.remove_node(node):
            removed.append(f"network namespace {node.netns}")
        say(f"node       {node.name}: removed")
    if procs.stop(fleet.server_pid_file, str(fleet.server_data_dir)):
        removed.append("server")
    removed += hostnet.teardown(fleet)
    if _same_file(config, fleet.admin_config):
        config.unlink()
        removed.append(f"admin config {config}")
    shutil.rmtree(fleet.run_dir, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    removed.append(f"state {state}")
    say(f"removed    fleet {name}: {len(fleet.nodes)} node(s), server, bridge {fleet.bridge}, {state}")
    return removed
