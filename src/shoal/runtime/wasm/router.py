"""RuntimeRouter: one Driver for the agent over the OCI driver and the wasm driver.

``create`` sends a spec to the driver its pod's runtime names (``runtime_of(spec)``: "oci" or
"wasm"); every later call by container id goes to the driver that created or recovered that id, so
logs, exec, stats, probes and eviction need no runtime switch of their own. ``recover`` merges both
drivers' containers. It must not decide anything else (restarts, placement): it only dispatches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from shoal.runtime.protocol import (
    Capabilities,
    ContainerInfo,
    ContainerNotFound,
    ContainerSpec,
    Driver,
    ExecResult,
    ExecStream,
    LogLine,
    SpecError,
    Stats,
    TerminalSize,
)
from shoal.runtime.wasm.driver import WasmDriver

__all__ = ["RuntimeRouter"]


class RuntimeRouter:
    def __init__(self, oci: Driver, wasm: Driver, runtime_of: Callable[[ContainerSpec], str]) -> None:
        self._drivers = {"oci": oci, "wasm": wasm}
        self._runtime_of = runtime_of
        self._owner: dict[str, Driver] = {}

    async def _driver(self, cid: str) -> Driver:
        owner = self._owner.get(cid)
        if owner is not None:
            return owner
        for driver in (self._drivers["wasm"], self._drivers["oci"]):  # an id this router has not seen yet
            try:
                await driver.inspect(cid)
            except ContainerNotFound:
                continue
            self._owner[cid] = driver
            return driver
        raise ContainerNotFound(cid)

    async def fingerprint(self) -> Capabilities:
        return await self._drivers["oci"].fingerprint()

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        runtime = self._runtime_of(spec)
        driver = self._drivers.get(runtime)
        if driver is None:
            raise SpecError("spec.runtime", f"{runtime!r} is not a runtime of this node; use oci or wasm")
        info = await driver.create(spec)
        self._owner[spec.id] = driver
        return info

    async def start(self, container_id: str) -> ContainerInfo:
        return await (await self._driver(container_id)).start(container_id)

    async def pause(self, container_id: str) -> ContainerInfo:
        return await (await self._driver(container_id)).pause(container_id)

    async def resume(self, container_id: str) -> ContainerInfo:
        return await (await self._driver(container_id)).resume(container_id)

    async def stop(self, container_id: str, grace: float) -> ContainerInfo:
        return await (await self._driver(container_id)).stop(container_id, grace)

    async def remove(self, container_id: str) -> None:
        await (await self._driver(container_id)).remove(container_id)
        self._owner.pop(container_id, None)

    async def inspect(self, container_id: str) -> ContainerInfo:
        return await (await self._driver(container_id)).inspect(container_id)

    async def wait(self, container_id: str, timeout: float) -> ContainerInfo | None:
        """For a wasm container (no pid of its own to watch): it once it stops, or as it is after
        ``timeout`` seconds. None for a container whose exit its pid shows (OCI)."""
        driver = await self._driver(container_id)
        if isinstance(driver, WasmDriver):
            return await driver.wait(container_id, timeout)
        return None

    async def recover(self) -> list[ContainerInfo]:
        found: list[ContainerInfo] = []
        for driver in self._drivers.values():
            for info in await driver.recover():
                self._owner[info.id] = driver
                found.append(info)
        return found

    async def logs(self, container_id: str, tail: int | None = None, follow: bool = False) -> AsyncIterator[LogLine]:
        driver = await self._driver(container_id)
        async for line in driver.logs(container_id, tail, follow):
            yield line

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float = 30.0) -> ExecResult:
        return await (await self._driver(container_id)).exec(container_id, argv, timeout)

    async def exec_stream(self, container_id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
                          size: TerminalSize | None = None) -> ExecStream:
        driver = await self._driver(container_id)
        return await driver.exec_stream(container_id, argv, tty=tty, stdin=stdin, size=size)

    async def stats(self, container_id: str) -> Stats:
        return await (await self._driver(container_id)).stats(container_id)
