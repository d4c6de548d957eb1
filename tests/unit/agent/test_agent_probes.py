"""Probes: thresholds, the three check kinds (tcp/http from inside a network namespace, exec through
the driver), and what a pod shows when readiness flips, liveness fails, or startup is still pending."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from agentfakes import Images

from shoal.agent import probes as probes_module
from shoal.agent.cache import PodCache
from shoal.agent.pods import PodContext, PodWorker
from shoal.agent.probe_checks import ProbeTarget, resolve_port, run_check
from shoal.agent.probes import ProbeCounter
from shoal.model.pod import Probe
from shoal.runtime.fake import FakeDriver
from shoal.runtime.protocol import ExecResult


def probe(**fields: Any) -> Probe:
    return msgspec.convert(fields, Probe)


def test_counter_needs_consecutive_results_to_flip() -> None:
    counter = ProbeCounter(success_threshold=2, failure_threshold=3)
    assert [counter.record(ok) for ok in (True, False, True, True)] == [False, False, False, True]
    assert counter.passing is True
    assert [counter.record(ok) for ok in (False, False, True, False, False)] == [False] * 5
    assert counter.passing is True
    assert counter.record(False) is True and counter.passing is False
    assert counter.record(False) is False  # already failing: no second change


def test_named_ports_resolve_and_unknown_names_say_which_exist() -> None:
    assert resolve_port("http", {"http": 8080}) == 8080
    assert resolve_port("9090", {}) == 9090
    with pytest.raises(ValueError, match=r'"metrics".*named ports: http'):
        resolve_port("metrics", {"http": 8080})


async def _http_server(status: int) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # a tcpSocket probe: connect and close
            writer.close()
            return
        writer.write(f"HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("pid", [0, os.getpid()], ids=["own-namespace", "setns-into-namespace"])
def test_tcp_and_http_checks(pid: int) -> None:
    async def main() -> None:
        driver = FakeDriver()
        ok_server, ok_port = await _http_server(200)
        bad_server, bad_port = await _http_server(503)
        target = ProbeTarget("c1", pid, "127.0.0.1", {"web": ok_port})
        try:
            assert await run_check(probe(tcpSocket={"port": ok_port}), target, driver) == (
                True, f"connected to 127.0.0.1:{ok_port}")
            ok, detail = await run_check(probe(httpGet={"port": "web", "path": "/healthz"}), target, driver)
            assert ok and detail == f"GET 127.0.0.1:{ok_port}/healthz: HTTP 200"
            ok, detail = await run_check(probe(httpGet={"port": bad_port}), target, driver)
            assert not ok and detail.endswith("HTTP 503")
            closed = _closed_port()
            ok, detail = await run_check(probe(tcpSocket={"port": closed}), target, driver)
            assert not ok and f"127.0.0.1:{closed}" in detail and "refused" in detail
        finally:
            ok_server.close()
            bad_server.close()

    asyncio.run(main())


def test_exec_check_runs_through_the_driver() -> None:
    async def main() -> None:
        answers = {"good": ExecResult(0, b"", b""), "bad": ExecResult(2, b"", b"no such file\n")}
        driver = FakeDriver(exec_handler=lambda cid, argv: answers[argv[-1]])
        info = await driver.create(_spec())
        await driver.start(info.id)
        target = ProbeTarget(info.id, 0)
        assert (await run_check(probe(exec={"command": ["test", "good"]}), target, driver))[0] is True
        ok, detail = await run_check(probe(exec={"command": ["test", "bad"]}), target, driver)
        assert not ok and detail == "'test bad' exited with 2: no such file"

    asyncio.run(main())


def _spec() -> Any:
    from shoal.runtime.protocol import ContainerSpec

    return ContainerSpec(id="c1", name="c1", pod_uid="u", pod_name="p", rootfs_path="/")


# ----- the worker with probes --------------------------------------------------------------------


class World:
    """Answers exec probes from files that 'exist' in the container (a set the test edits)."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.execs: list[str] = []

    def __call__(self, cid: str, argv: Any) -> ExecResult:
        self.execs.append(argv[-1])
        return ExecResult(0 if argv[-1] in self.files else 1, b"", f"{argv[-1]} missing".encode())


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, FakeDriver, PodContext]]:
    monkeypatch.setattr(probes_module, "SECOND", 0.01)
    w = World()
    driver = FakeDriver(exec_handler=w)
    cache = PodCache(tmp_path / "agent.db")
    ctx = PodContext(driver=driver, images=Images(), cache=cache, pods_dir=tmp_path / "pods",  # type: ignore[arg-type]
                     host_ip="10.1.1.1", publish=lambda uid: None, watch_pids=False,
                     clock=lambda: dt.datetime.now(dt.UTC))
    yield w, driver, ctx
    cache.close()


def probed_pod(**probes: Any) -> dict[str, Any]:
    container = {"name": "web", "image": "reg/img:1", **probes}
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 1, "containers": [container]}}


def exec_probe(name: str, **extra: Any) -> dict[str, Any]:
    return {"exec": {"command": ["test", "-f", name]}, "periodSeconds": 1, "failureThreshold": 2, **extra}


async def until(check: Any, what: str, tries: int = 300) -> None:
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def ready(worker: PodWorker) -> str:
    return {c["type"]: c["status"] for c in worker.status.get("conditions", [])}.get("Ready", "")


def web(worker: PodWorker) -> dict[str, Any]:
    statuses: list[dict[str, Any]] = worker.status.get("containerStatuses", [{}])
    return statuses[0]


def test_readiness_flips_the_ready_condition(world: tuple[World, FakeDriver, PodContext]) -> None:
    w, _driver, ctx = world

    async def main() -> None:
        worker = PodWorker(ctx, probed_pod(readinessProbe=exec_probe("/ready", failureThreshold=1)))
        task = asyncio.create_task(worker.run())
        try:
            await until(lambda: web(worker).get("state") == "Running", "running")
            assert ready(worker) == "False" and web(worker)["ready"] is False  # not ready before a success
            w.files.add("/ready")
            await until(lambda: ready(worker) == "True", "Ready=True")
            assert web(worker)["ready"] is True and "message" not in web(worker)
            w.files.discard("/ready")
            await until(lambda: ready(worker) == "False", "Ready=False")
            assert worker.status["phase"] == "Running"  # not ready is not dead: nothing restarted
            assert web(worker)["restartCount"] == 0 and web(worker)["reason"] == "Unhealthy"
            assert "Readiness probe failed" in web(worker)["message"] and "/ready missing" in web(worker)["message"]
        finally:
            task.cancel()

    asyncio.run(main())


def test_liveness_failure_kills_and_restarts_the_container(world: tuple[World, FakeDriver, PodContext]) -> None:
    w, driver, ctx = world
    w.files.add("/alive")

    async def main() -> None:
        worker = PodWorker(ctx, probed_pod(livenessProbe=exec_probe("/alive")))
        task = asyncio.create_task(worker.run())
        try:
            await until(lambda: ready(worker) == "True", "Ready (no readiness probe)")
            first = web(worker)["containerId"], driver.calls.count(("start", web(worker)["containerId"]))
            w.files.discard("/alive")
            await until(lambda: web(worker).get("restartCount") == 1 and web(worker).get("state") == "Running",
                        "restart after two failed liveness checks", tries=500)
            assert ("stop", first[0]) in driver.calls
            status = web(worker)
            assert status["reason"] == "Unhealthy"
            assert status["message"].startswith("Killing: Liveness probe failed 2 time(s) in a row")
        finally:
            task.cancel()

    asyncio.run(main())


def test_startup_probe_holds_back_liveness_and_readiness(world: tuple[World, FakeDriver, PodContext]) -> None:
    w, _driver, ctx = world

    async def main() -> None:
        worker = PodWorker(ctx, probed_pod(startupProbe=exec_probe("/started", failureThreshold=50),
                                           livenessProbe=exec_probe("/alive"), readinessProbe=exec_probe("/alive")))
        task = asyncio.create_task(worker.run())
        try:
            await until(lambda: w.execs.count("/started") >= 5, "startup checks")
            assert "/alive" not in w.execs and ready(worker) == "False"
            assert web(worker)["restartCount"] == 0
            w.files.update({"/started", "/alive"})
            await until(lambda: ready(worker) == "True", "Ready after startup")
            assert "/alive" in w.execs
        finally:
            task.cancel()

    asyncio.run(main())


def test_an_adopted_ready_container_stays_ready_until_a_probe_says_otherwise(
        world: tuple[World, FakeDriver, PodContext]) -> None:
    """After an agent restart the readiness of a container that kept running is not reset to False."""
    from shoal.agent.podspec import container_id
    from shoal.agent.status import timestamp
    from shoal.runtime.protocol import ContainerSpec

    _w, driver, ctx = world

    async def main() -> None:
        cid = container_id("u1", "web")
        await driver.create(ContainerSpec(id=cid, name="web", pod_uid="u1", pod_name="web", rootfs_path="/"))
        info = await driver.start(cid)
        assert info.started_at is not None
        manifest = probed_pod(readinessProbe=exec_probe("/ready", failureThreshold=1, initialDelaySeconds=30))
        manifest["status"] = {"containerStatuses": [{"name": "web", "containerId": cid, "ready": True,
                                                     "startedAt": timestamp(info.started_at)}]}
        worker = PodWorker(ctx, manifest)
        task = asyncio.create_task(worker.run())
        try:
            await until(lambda: web(worker).get("state") == "Running", "adopted")
            assert ready(worker) == "True" and web(worker)["restartCount"] == 0
            assert ("create", cid) not in driver.calls[1:]  # adopted, not recreated
        finally:
            task.cancel()

    asyncio.run(main())
