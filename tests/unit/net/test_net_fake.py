"""The in-memory FakePodNetwork behaves like PodNetwork for agent unit tests."""

from __future__ import annotations

import asyncio

import pytest

from shoal.net import FakePodNetwork, NetworkError, PortMapping


def test_fake_allocates_idempotently_recovers_and_fails_on_request() -> None:
    async def scenario() -> None:
        net = FakePodNetwork("10.77.1.0/24")
        a = await net.setup("pod-a", "a", "default", [PortMapping(8080, 80)])
        assert (a.ip, a.gateway, a.netns_path) == ("10.77.1.2", "10.77.1.1", "/run/shoal/netns/pod-a")
        assert await net.setup("pod-a", "a", "default") == a
        b = await net.setup("pod-b", "b", "default")
        assert b.ip == "10.77.1.3"
        assert await net.recover(["pod-b"]) == [b]
        await net.teardown("pod-missing")
        net.fail_next_setup = "CNI plugin 'bridge' ADD failed (code 11): boom"
        with pytest.raises(NetworkError, match="boom"):
            await net.setup("pod-c", "c", "default")
        with pytest.raises(NetworkError, match="pod uid"):
            await net.setup("../etc", "c", "default")

    asyncio.run(scenario())
