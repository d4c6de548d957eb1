"""RuntimeRouter sends each pod's containers to the driver of its runtime, and id calls to their owner."""

from __future__ import annotations

import asyncio

import pytest

from shoal.model.pod import ContainerState
from shoal.runtime.fake import FakeDriver
from shoal.runtime.protocol import ContainerNotFound, ContainerSpec, SpecError
from shoal.runtime.wasm import RuntimeRouter

_WASM_PODS = {"w"}


def _spec(cid: str, pod: str) -> ContainerSpec:
    return ContainerSpec(id=cid, name=cid, pod_uid=pod, pod_name=pod)


def _router(oci: FakeDriver, wasm: FakeDriver) -> RuntimeRouter:
    return RuntimeRouter(oci, wasm, lambda spec: "wasm" if spec.pod_uid in _WASM_PODS else "oci")


def test_create_follows_the_runtime_and_id_calls_follow_the_owner() -> None:
    oci, wasm = FakeDriver(), FakeDriver()
    router = _router(oci, wasm)

    async def body() -> None:
        await router.create(_spec("c-oci", "o"))
        await router.create(_spec("c-wasm", "w"))
        assert [i.id for i in await oci.recover()] == ["c-oci"]
        assert [i.id for i in await wasm.recover()] == ["c-wasm"]
        assert (await router.start("c-wasm")).state is ContainerState.RUNNING
        assert (await wasm.inspect("c-wasm")).state is ContainerState.RUNNING
        assert (await oci.inspect("c-oci")).state is ContainerState.CREATED
        assert await router.wait("c-oci", 5) is None  # an OCI container's pid shows its exit
        await router.remove("c-oci")
        with pytest.raises(ContainerNotFound):
            await router.inspect("c-oci")

    asyncio.run(body())


def test_a_restarted_agent_finds_the_owner_of_every_container() -> None:
    oci, wasm = FakeDriver(), FakeDriver()

    async def body() -> None:
        await _router(oci, wasm).create(_spec("c-wasm", "w"))
        await _router(oci, wasm).create(_spec("c-oci", "o"))
        fresh = _router(oci, wasm)  # no state carried over
        assert (await fresh.start("c-oci")).state is ContainerState.RUNNING  # found without recover()
        again = _router(oci, wasm)
        assert sorted(i.id for i in await again.recover()) == ["c-oci", "c-wasm"]
        assert (await again.start("c-wasm")).state is ContainerState.RUNNING
        assert (await oci.inspect("c-oci")).state is ContainerState.RUNNING

    asyncio.run(body())


def test_an_unknown_runtime_is_a_spec_error() -> None:
    router = RuntimeRouter(FakeDriver(), FakeDriver(), lambda spec: "gvisor")
    with pytest.raises(SpecError, match=r"^spec\.runtime: 'gvisor' is not a runtime of this node; use oci or wasm"):
        asyncio.run(router.create(_spec("c", "p")))
