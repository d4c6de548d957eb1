"""``shoal agent uninstall``: stop the agent and remove everything it made on this machine.

In order: the agent (``systemctl disable --now`` where systemd runs its unit, else the PID in
``DATA_DIR/agent.pid`` and any ``shoal.agent`` process naming the data dir), every container of
the node (``runc kill``/``delete`` under ``--runc-root``, the conmon processes), mounts under the
data dir and the pod network namespaces under ``--netns-dir``, the CNI bridge (``--bridge``), the
nft tables ``ip shoal`` and ``ip shoal-policy``, host routes carrying shoal's route protocol, the pod cgroups under
``--cgroup-parent``, the unit file and the data dir. Options default to what the installed unit
runs the agent with, then to the agent's defaults. It prints each thing it removed and must not
touch anything else (other routes, tables, links or cgroups).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shoal.agent.install import UNIT_FILE, UNIT_NAME, systemd_running, unit_args

__all__ = ["uninstall_main"]

PID_FILE = "agent.pid"
CGROUP_ROOT = Path("/sys/fs/cgroup")
_MARKERS = ("identity.json", "agent.db", "containers", PID_FILE)

EXAMPLE = """example:
  shoal agent uninstall --data-dir /var/lib/shoal-agent --yes

Without options it uses those of the installed unit (shoal agent install), else the agent's defaults.
"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Stop the node agent and remove its containers, mounts, pod network "
                                            "namespaces, bridge, nft table, routes, cgroups, unit and data dir.")
    p.add_argument("--data-dir", help="the agent's data dir (default: the unit's, else /var/lib/shoal-agent)")
    p.add_argument("--runc-root", help="runc's state dir (default: the unit's, else /run/shoal/runc)")
    p.add_argument("--cgroup-parent", help="parent cgroup of all pods (default: the unit's, else /shoal)")
    p.add_argument("--netns-dir", help="pod network namespaces (default: the unit's, else /run/shoal/netns)")
    p.add_argument("--bridge", help="the pods' bridge (default: the unit's, else shoal0)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--unit-file", default=str(UNIT_FILE), help=argparse.SUPPRESS)
    return p


def _options(args: argparse.Namespace) -> argparse.Namespace:
    """Explicit options, then the installed unit's, then the agent's defaults."""
    from shoal.agent.run import parser

    unit = Path(args.unit_file)
    installed = unit_args(unit.read_text()) if unit.is_file() else []
    defaults = parser().parse_known_args(installed)[0]
    for key in ("data_dir", "runc_root", "cgroup_parent", "netns_dir", "bridge"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(defaults, key))
    return args


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return False


def _agent_pids(data_dir: Path) -> set[int]:
    pids: set[int] = set()
    with contextlib.suppress(OSError, ValueError):
        pids.add(int((data_dir / PID_FILE).read_text().strip()))
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [w.decode(errors="replace") for w in argv]
            if "shoal.agent" in words and str(data_dir) in words and "uninstall" not in words:
                pids.add(int(proc.name))
    return {pid for pid in pids if pid != os.getpid() and Path(f"/proc/{pid}/cmdline").exists()
            and b"shoal" in Path(f"/proc/{pid}/cmdline").read_bytes()}


def stop_agent(data_dir: Path, unit_file: Path, say: Callable[[str], None]) -> None:
    if systemd_running() and unit_file.exists():
        _run("systemctl", "disable", "--now", UNIT_NAME)
        say(f"stopped and disabled the systemd unit {UNIT_NAME}")
    for pid in sorted(_agent_pids(data_dir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 20):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        say(f"stopped the agent (pid {pid})")


def remove_containers(runc_root: Path, data_dir: Path, say: Callable[[str], None]) -> None:
    items: list[dict[str, object]] = []
    if runc_root.is_dir():
        listed = _run("runc", "--root", str(runc_root), "list", "-f", "json")
        with contextlib.suppress(ValueError):
            items = (json.loads(listed.stdout or "null") or []) if listed.returncode == 0 else []
    for item in items:
        cid = str(item["id"])
        _run("runc", "--root", str(runc_root), "kill", "--all", cid, "KILL")
        _run("runc", "--root", str(runc_root), "delete", "--force", cid)
        say(f"removed container {cid}")
    for pidfile in sorted(data_dir.glob("containers/*/conmon.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip() or 0)
            if pid > 0 and b"conmon" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
                say(f"stopped conmon of {pidfile.parent.name} (pid {pid})")
    if runc_root.is_dir():
        shutil.rmtree(runc_root, ignore_errors=True)
        say(f"removed {runc_root}")


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        fields = [line.split() for line in f]
    return [bytes(p[4], "ascii").decode("unicode_escape") for p in fields if len(p) > 4]


def unmount_under(roots: Sequence[Path], say: Callable[[str], None]) -> None:
    prefixes = [str(r).rstrip("/") + "/" for r in roots]
    points = {p for p in _mount_points() if any(p.startswith(prefix) for prefix in prefixes)}
    for point in sorted(points, key=len, reverse=True):
        if _run("umount", "-l", point).returncode == 0:
            say(f"unmounted {point}")


def teardown_sandboxes(data_dir: Path, netns_dir: Path, say: Callable[[str], None]) -> None:
    """CNI DEL for every pod sandbox (veth, IPAM lease, portmap rules), as the agent would on pod deletion."""
    import asyncio

    from shoal.net.sandbox import PodNetwork

    network = PodNetwork(data_dir, netns_dir=netns_dir)

    async def teardown_all() -> None:
        for uid in network.sandboxes():
            try:
                await network.teardown(uid)
                say(f"tore down the network of pod {uid}")
            except Exception as exc:  # the brute-force steps after this remove what is left
                print(f"warning: CNI DEL of pod {uid} failed ({exc}); removing its namespace anyway",
                      file=sys.stderr)

    if network.sandboxes():
        asyncio.run(teardown_all())


def remove_netns(netns_dir: Path, say: Callable[[str], None]) -> None:
    if netns_dir.is_dir():
        for entry in sorted(netns_dir.iterdir()):
            with contextlib.suppress(OSError):
                entry.unlink()
                say(f"removed pod network namespace {entry.name}")
        with contextlib.suppress(OSError):
            netns_dir.rmdir()


def remove_network(bridge: str, say: Callable[[str], None]) -> None:
    from shoal.net.routes import ROUTE_PROTOCOL
    from shoal.net.vxlan import VXLAN_DEVICE

    if bridge and _run("ip", "link", "show", "dev", bridge).returncode == 0 and \
            _run("ip", "link", "delete", bridge).returncode == 0:
        say(f"removed bridge {bridge}")
    if _run("ip", "link", "show", "dev", VXLAN_DEVICE).returncode == 0 and \
            _run("ip", "link", "delete", VXLAN_DEVICE).returncode == 0:  # its routes and FDB entries go with it
        say(f"removed VXLAN device {VXLAN_DEVICE}")
    for table in ("shoal", "shoal-policy"):  # Services and NodePorts; NetworkPolicies
        if _run("nft", "list", "table", "ip", table).returncode == 0 and \
                _run("nft", "delete", "table", "ip", table).returncode == 0:
            say(f"removed nft table ip {table}")
    routes = [r for r in _run("ip", "-4", "route", "show", "proto", str(ROUTE_PROTOCOL)).stdout.splitlines() if r]
    if routes and _run("ip", "-4", "route", "flush", "proto", str(ROUTE_PROTOCOL)).returncode == 0:
        for route in routes:
            say(f"removed route {route.strip()}")


def _kill_cgroup(cgroup: Path) -> None:
    if (cgroup / "cgroup.kill").exists():
        with contextlib.suppress(OSError):
            (cgroup / "cgroup.kill").write_text("1")
    with contextlib.suppress(OSError, ValueError):
        for pid in (cgroup / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def remove_cgroups(cgroup_parent: str, say: Callable[[str], None], root: Path = CGROUP_ROOT) -> None:
    rel = cgroup_parent.strip("/")
    if not rel:
        return
    unified = (root / "cgroup.controllers").exists()
    hierarchies = [root] if unified else [h for h in root.iterdir() if h.is_dir() and not h.is_symlink()]
    for hierarchy in hierarchies:
        top = hierarchy / rel
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.glob("**") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for cgroup in dirs:
            for _ in range(50):
                try:
                    cgroup.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    _kill_cgroup(cgroup)
                    time.sleep(0.05)
        if not top.exists():
            say(f"removed cgroup {top}")


def uninstall_main(argv: Sequence[str], prog: str = "shoal agent uninstall") -> int:
    args = _options(_parser(prog).parse_args(list(argv)))
    data_dir, unit_file = Path(args.data_dir).absolute(), Path(args.unit_file)
    if data_dir == Path("/") or (data_dir.exists() and not any((data_dir / m).exists() for m in _MARKERS)):
        print(f"error: {data_dir} does not look like a shoal agent data dir (no identity.json, agent.db or "
              "containers); pass the agent's --data-dir", file=sys.stderr)
        return 2
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: uninstall removes every container of this node and its data; pass --yes", file=sys.stderr)
            return 2
        answer = input(f"remove the shoal agent, its containers and {data_dir}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    removed: list[str] = []

    def say(what: str) -> None:
        removed.append(what)
        print(what, flush=True)

    stop_agent(data_dir, unit_file, say)
    remove_containers(Path(args.runc_root), data_dir, say)
    netns_dir = Path(args.netns_dir).absolute()
    teardown_sandboxes(data_dir, netns_dir, say)
    unmount_under([data_dir, netns_dir], say)
    remove_netns(netns_dir, say)
    remove_network(args.bridge, say)
    remove_cgroups(args.cgroup_parent, say)
    if unit_file.exists():
        unit_file.unlink()
        say(f"removed {unit_file}")
        if systemd_running():
            _run("systemctl", "daemon-reload")
    if data_dir.exists():
        shutil.rmtree(data_dir)
        say(f"removed {data_dir}")
    print(f"the shoal agent is uninstalled ({len(removed)} thing(s) removed)" if removed else
          "nothing of the shoal agent was found")
    return 0
