"""``FakePodNetwork``: the in-memory ``SandboxNetwork`` agent unit tests use.

Owns nothing on the host: it hands out addresses from a pod CIDR in order, remembers them per
pod uid with the same idempotence as ``PodNetwork`` (setup twice returns the same address,
teardown of a missing pod is fine) and can be told to fail the next setup. It must not run
plugins, create namespaces or touch routes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Sequence

from shoal.net.protocol import Bandwidth, NetworkError, PodSandboxNetwork, PortMapping, check_pod_uid

__all__ = ["FakePodNetwork"]


class FakePodNetwork:
    def __init__(self, pod_cidr: str = "10.77.1.0/24", netns_dir: str = "/run/shoal/netns") -> None:
        self.network = ipaddress.ip_network(pod_cidr)
        self.netns_dir = netns_dir
        self.sandboxes: dict[str, PodSandboxNetwork] = {}
        self.port_mappings: dict[str, tuple[PortMapping, ...]] = {}
        self.bandwidth: dict[str, Bandwidth | None] = {}
        self.fail_next_setup: str = ""
        self.calls: list[tuple[str, str]] = []

    def _free_ip(self) -> str:
        used = {s.ip for s in self.sandboxes.values()}
        hosts = iter(self.network.hosts())
        next(hosts)  # the gateway
        for ip in hosts:
            if str(ip) not in used:
                return str(ip)
        raise NetworkError(f"no free address left in {self.network}")

    async def setup(
        self,
        pod_uid: str,
        pod_name: str,
        namespace: str,
        port_mappings: Sequence[PortMapping] = (),
        bandwidth: Bandwidth | None = None,
    ) -> PodSandboxNetwork:
        check_pod_uid(pod_uid)
        self.calls.append(("setup", pod_uid))
        if pod_uid in self.sandboxes:
            return self.sandboxes[pod_uid]
        if self.fail_next_setup:
            message, self.fail_next_setup = self.fail_next_setup, ""
            raise NetworkError(message)
        sandbox = PodSandboxNetwork(
            pod_uid,
            f"{self.netns_dir}/{pod_uid}",
            self._free_ip(),
            str(next(self.network.hosts())),
            self.network.prefixlen,
        )
        self.sandboxes[pod_uid] = sandbox
        self.port_mappings[pod_uid] = tuple(port_mappings)
        self.bandwidth[pod_uid] = bandwidth
        return sandbox

    async def teardown(self, pod_uid: str) -> None:
        self.calls.append(("teardown", pod_uid))
        self.sandboxes.pop(pod_uid, None)
        self.port_mappings.pop(pod_uid, None)
        self.bandwidth.pop(pod_uid, None)

    async def check(self, pod_uid: str) -> None:
        if pod_uid not in self.sandboxes:
            raise NetworkError(f"pod {pod_uid} has no network sandbox on this node; set it up first")

    async def recover(self, live_pod_uids: Collection[str]) -> list[PodSandboxNetwork]:
        for uid in [u for u in self.sandboxes if u not in set(live_pod_uids)]:
            await self.teardown(uid)
        return list(self.sandboxes.values())
