"""The OCI runtime joins a pod network namespace given by path (/run/shoal/netns/<uid>-style):
a real container sees the address CNI gave the pod."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

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
        runc = ["runc", "--root", str(work / "runc")]
        listed = subprocess.run([*runc, "list", "-q"], capture_output=True, text=True, timeout=30)
        for cid in listed.stdout.split():
            subprocess.run([*runc, "delete", "--force", cid], capture_output=True, timeout=30)
        lab.cleanup()
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            top = hierarchy / cgroup_parent.strip("/")
            for d in sorted(
                (p for p in top.glob("**") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    d.rmdir()
    assert not Path(f"/sys/fs/cgroup{cgroup_parent}").exists()
    assert list(Path("/sys/fs/cgroup").glob(f"*{cgroup_parent}")) == []
