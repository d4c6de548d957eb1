"""Runs shoal.net inside a test "host" network namespace: the tests start it with
``nsenter --net=HOST python -m tests.integration.net.hostctl CMD JSON`` (net namespace only, so the
pod namespaces' bind mounts land in the test's mount namespace) and read one JSON line back.
Each call is a fresh process, like an agent that restarted between calls."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from shoal.net import Bandwidth, HostRoutes, NetworkError, PodNetwork, PortMapping, write_conflist


async def _main(command: str, args: dict[str, Any]) -> Any:
    data = Path(args["data"])
    if command == "conflist":
        return write_conflist(data / "net" / "shoal.conflist", args["cidr"], data / "net" / "ipam")
    if command == "routes":
        plan = await HostRoutes().sync(args["desired"])
        return dataclasses.asdict(plan)
    net = PodNetwork(
        data,
        netns_dir=Path(args["netns_dir"]),
        conflist_path=Path(args["conflist"]) if args.get("conflist") else None,
    )
    if command == "setup":
        ports = [PortMapping(**p) for p in args.get("ports", [])]
        bandwidth = Bandwidth(**args["bandwidth"]) if args.get("bandwidth") else None
        return dataclasses.asdict(await net.setup(args["uid"], args["name"], "default", ports, bandwidth))
    if command == "teardown":
        await net.teardown(args["uid"])
        return None
    if command == "check":
        await net.check(args["uid"])
        return None
    if command == "recover":
        return [dataclasses.asdict(s) for s in await net.recover(args["live"])]
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    try:
        print(json.dumps({"ok": asyncio.run(_main(sys.argv[1], json.loads(sys.argv[2])))}))
    except NetworkError as exc:
        print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
