"""The fleet's processes: the server on this machine and one agent inside each node's namespace,
started detached (own session, log file, pid file) so they outlive ``shoal cluster up``.

Agents run under ``nsenter --net`` only (not ``ip netns exec``, which would also give them a private
mount namespace and hide their overlay mounts from this machine). A pid file counts only while its
process's command line still names the fleet, so a reused pid is never stopped by mistake. It must
not create or remove network links (``hostnet`` does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shoal.fleet.layout import FleetLayout, NodeLayout

__all__ = ["alive", "start_agent", "start_server", "stop"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def alive(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process runs and its command line contains ``marker``."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _running(pid) and marker in _cmdline(pid) else None


def _spawn(argv: list[str], log: Path, pid_file: Path, env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, **(env or {})})
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def start_server(fleet: FleetLayout) -> int:
    marker = str(fleet.server_data_dir)
    if (pid := alive(fleet.server_pid_file, marker)) is not None:
        return pid
    return _spawn([sys.executable, "-m", "shoal", "server", "--data-dir", marker, "--bind", fleet.server_address,
                   "--port", str(fleet.port), "--log-level", "info"], fleet.server_log, fleet.server_pid_file)


def start_agent(fleet: FleetLayout, node: NodeLayout, join_token: str, extra: tuple[str, ...] = (),
                labels: str = "") -> int:
    pid_file = Path(node.pid_file)
    if (pid := alive(pid_file, node.data_dir)) is not None:
        return pid
    argv = ["nsenter", f"--net=/run/netns/{node.netns}", sys.executable, "-m", "shoal.agent",
            "--server", fleet.server_url, "--data-dir", node.data_dir, "--name", node.name,
            "--runc-root", node.runc_root, "--netns-dir", node.netns_dir, "--cgroup-parent", node.cgroup_parent,
            "--labels", ",".join(filter(None, (f"shoal.io/fleet={fleet.name}", labels))), *extra]
    return _spawn(argv, Path(node.log), pid_file, env={"SHOAL_TOKEN": join_token})  # not in argv: `ps` shows argv


def stop(pid_file: Path, marker: str, grace: float = 20.0) -> bool:
    """SIGTERM the process (and its group), SIGKILL after ``grace``; False if it was not running."""
    pid = alive(pid_file, marker)
    with contextlib.suppress(OSError):
        pid_file.unlink()
    if pid is None:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and _running(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if not _running(pid):
            return True
    return True
