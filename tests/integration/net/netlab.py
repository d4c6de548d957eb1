"""Test "hosts" for pod-network tests: each host is a network namespace persisted under the test's tmp dir,
hosts are joined by veth pairs with addresses from 198.18.77.0/24 (benchmark range, only inside
these namespaces), and shoal.net runs inside a host through ``hostctl``. The finalizer kills
every process the test started and unmounts every namespace file under the tmp dir, which
destroys the namespaces with their veths, bridges and iptables/nft tables, even on failure."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
BUSYBOX = "/bin/busybox"


def nsfs_mounts_under(base: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(str(base) + "/")]


def sh(*argv: str, netns: Path | None = None, check: bool = True, timeout: float = 30) -> str:
    cmd = ["nsenter", f"--net={netns}", *argv] if netns else list(argv)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Host:
    name: str
    netns: Path
    address: str
    data: Path
    pod_netns_dir: Path
    pod_cidr: str

    def ctl(self, command: str, **args: Any) -> Any:
        """Run shoal.net inside this host; returns the result or raises with the error text."""
        args = {"data": str(self.data), "netns_dir": str(self.pod_netns_dir)} | args
        done = subprocess.run(
            [
                "nsenter",
                f"--net={self.netns}",
                sys.executable,
                "-m",
                "tests.integration.net.hostctl",
                command,
                json.dumps(args),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 0, f"hostctl {command} on {self.name} crashed:\n{done.stderr}"
        reply = json.loads(done.stdout.strip().splitlines()[-1])
        if "error" in reply:
            raise HostctlError(reply["type"], reply["error"])
        return reply["ok"]

    def links(self) -> list[str]:
        return [
            line.split()[0].split("@")[0] for line in sh("ip", "-br", "link", netns=self.netns).splitlines()
        ]

    def ipam_reservations(self) -> list[str]:
        ipam = self.data / "net" / "ipam" / "shoal"
        if not ipam.is_dir():
            return []
        return sorted(
            p.name for p in ipam.iterdir() if p.name not in ("lock",) and not p.name.startswith("last_")
        )


class HostctlError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass
class Lab:
    base: Path
    hosts: list[Host] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def host(self, name: str, address: str, pod_cidr: str) -> Host:
        netns = self.base / "hosts" / name
        netns.parent.mkdir(parents=True, exist_ok=True)
        netns.touch()
        sh("unshare", f"--net={netns}", "true")
        sh("ip", "link", "set", "lo", "up", netns=netns)
        sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", netns=netns)
        host = Host(name, netns, address, self.base / name / "data", self.base / name / "netns", pod_cidr)
        self.hosts.append(host)
        return host

    def connect(self, a: Host, b: Host) -> None:
        """One L2 segment: a veth pair named ``node0`` on both sides, with the hosts' addresses."""
        sh(
            "ip",
            "link",
            "add",
            "node0",
            "type",
            "veth",
            "peer",
            "name",
            "node0",
            "netns",
            str(b.netns),
            netns=a.netns,
        )
        for host in (a, b):
            sh("ip", "addr", "add", f"{host.address}/24", "dev", "node0", netns=host.netns)
            sh("ip", "link", "set", "node0", "up", netns=host.netns)

    def spawn(self, netns: str, *argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["nsenter", f"--net={netns}", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for point in sorted(nsfs_mounts_under(self.base), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


def ping(from_netns: str, address: str) -> bool:
    done = subprocess.run(
        ["nsenter", f"--net={from_netns}", "timeout", "5", BUSYBOX, "ping", "-c1", "-W1", address],
        capture_output=True,
        timeout=15,
    )
    return done.returncode == 0
