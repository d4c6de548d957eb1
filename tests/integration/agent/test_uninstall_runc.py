"""`shoal agent install` and `uninstall` on a real node: the unit the installer writes, and an
uninstall after a real pod ran that leaves no agent, container, mount, cgroup, pod network
namespace, bridge, nft table, shoal route, unit or data dir behind. The agent runs with pod
networking in a network namespace of the test's own, and uninstall runs in it too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentenv import ROOT, AgentEnv, Server, wait_until
from netenv import in_netns
from test_net_runc import pod, running_ip, start_node

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def shoal_agent(env: AgentEnv, *args: str) -> subprocess.CompletedProcess[str]:
    assert env.netns is not None
    return subprocess.run(["nsenter", f"--net={env.netns}", sys.executable, "-m", "shoal.agent", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_uninstall_after_a_real_pod_leaves_nothing_behind(net_env: AgentEnv, server: Server, image: str,
                                                          tmp_path: Path) -> None:
    forward_before = IP_FORWARD.read_text()
    env = net_env
    assert env.netns is not None
    try:
        with server.http() as http:
            start_node(env, server, http)
            assert http.post("/api/v1/namespaces/default/pods", json=pod("web", image)).status_code == 201
            wait_until(lambda: running_ip(http, "web"), 60, "pod web Running with an IP")
        agent = env.procs[0]
        assert env.runc_list() and env.mounts() and env.cgroup_dirs()
        in_netns(env.netns, "ip", "route", "add", "blackhole", "10.99.1.0/24", "proto", "83").check_returncode()
        in_netns(env.netns, "ip", "route", "add", "blackhole", "10.99.2.0/24", "proto", "static").check_returncode()

        # The unit records the agent's options; uninstall takes them from it.
        unit = tmp_path / "shoal-agent.service"
        options = ["--server", server.url, "--data-dir", str(env.data_dir), "--runc-root", str(env.runc_root),
                   "--cgroup-parent", env.cgroup_parent, "--name", "edge-1", "--bridge", env.bridge,
                   "--netns-dir", str(env.base / "netns")]
        installed = shoal_agent(env, "install", *options, "--unit-file", str(unit))
        assert installed.returncode == 0, installed.stderr
        assert "systemd is not running here" in installed.stdout and "python" in installed.stdout
        text = unit.read_text()
        assert "KillMode=process" in text and "Delegate=yes" in text and "Restart=always" in text
        assert f"-m shoal.agent --server {server.url}" in text and f"--bridge {env.bridge}" in text

        done = shoal_agent(env, "uninstall", "--unit-file", str(unit), "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        for said in ("stopped the agent", "removed container", "tore down the network of pod", f"removed bridge "
                     f"{env.bridge}", "removed nft table ip shoal", "removed route blackhole 10.99.1.0/24",
                     "removed cgroup", f"removed {unit}", f"removed {env.data_dir}"):
            assert said in out, out
        assert agent.poll() is not None, "the agent still runs"
        assert env.runc_list() == {}
        assert env.mounts() == []
        assert env.cgroup_dirs() == [] and not any(Path("/sys/fs/cgroup").glob(f"*/{env.cgroup_parent.strip('/')}"))
        assert not (env.base / "netns").exists() or not list((env.base / "netns").iterdir())
        assert in_netns(env.netns, "ip", "link", "show", "dev", env.bridge).returncode != 0
        assert in_netns(env.netns, "nft", "list", "table", "ip", "shoal").returncode != 0
        routes = in_netns(env.netns, "ip", "route", "show").stdout
        assert "10.99.1.0/24" not in routes and "10.99.2.0/24" in routes  # only shoal's routes go
        assert not in_netns(env.netns, "ip", "-j", "link", "show", "type", "veth").stdout.strip("[] \n")
        assert not env.data_dir.exists() and not unit.exists()
    finally:
        if IP_FORWARD.read_text() != forward_before:
            IP_FORWARD.write_text(forward_before)
    assert IP_FORWARD.read_text() == forward_before
