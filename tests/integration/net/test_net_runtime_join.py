"""The OCI runtime joins a pod network namespace given by path (/run/shoal/netns/<uid>-style):
a real container sees the address CNI gave the pod."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.hostclean import cgroup_tops, kill_runc_containers, remove_cgroup_trees
from tests.integration.net.netlab import ROOT, Lab


def test_container_joins_pod_netns_by_path(lab: Lab) -> None:
    host = lab.host("a", "198.18.77.1", "10.77.1.0/24")
    work = lab.base / "join"
    work.mkdir()
    cgroup_parent = f"/shoal-nettest-{uuid.uuid4().hex[:8]}"
    try:
        done = subprocess.run(
            [
                "nsenter",
                f"--net={host.netns}",
                sys.executable,
                "-m",
                "tests.integration.net.joinctl",
                str(work),
                cgroup_parent,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["exit"] == 0
        assert f"|-- {seen['ip']}\n" in seen["fib"] and seen["ip"] == "10.77.1.2"
    finally:
        kill_runc_containers(work / "runc")
        lab.cleanup()
        remove_cgroup_trees(cgroup_tops(cgroup_parent))
    assert not Path(f"/sys/fs/cgroup{cgroup_parent}").exists()
    assert list(Path("/sys/fs/cgroup").glob(f"*{cgroup_parent}")) == []
