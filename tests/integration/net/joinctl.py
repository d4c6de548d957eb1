"""Runs inside a test host: sets up a pod network, starts a real container (OciDriver, runc)
that joins the pod's network namespace by its path, prints what the container sees on
/proc/net/fib_trie, then removes the container and tears the network down."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

from shoal.net import PodNetwork, write_conflist
from shoal.runtime import ContainerSpec, NamespaceJoin
from shoal.runtime.oci import OciDriver


async def main(base: Path, cgroup_parent: str) -> None:
    write_conflist(base / "data" / "net" / "shoal.conflist", "10.77.1.0/24", base / "data" / "net" / "ipam")
    net = PodNetwork(base / "data", netns_dir=base / "netns")
    sandbox = await net.setup("pod-j", "j", "default")
    layer = base / "layer"
    (layer / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", layer / "bin" / "busybox")
    for applet in ("sh", "sleep", "cat"):
        (layer / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (layer / d).mkdir()
    driver = OciDriver(root_dir=base / "containers", runc_root=base / "runc", cgroup_parent=cgroup_parent)
    spec = ContainerSpec(
        id="c1",
        name="c1",
        pod_uid="pod-j",
        pod_name="j",
        lower_dirs=(str(layer),),
        command=("sleep", "600"),
        join_namespaces=(NamespaceJoin("network", sandbox.netns_path),),
    )
    await driver.create(spec)
    await driver.start("c1")
    seen = await driver.exec("c1", ["cat", "/proc/net/fib_trie"])
    await driver.stop("c1", 0)
    await driver.remove("c1")
    await net.teardown("pod-j")
    print(json.dumps({"ip": sandbox.ip, "exit": seen.exit_code, "fib": seen.stdout.decode()}))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
