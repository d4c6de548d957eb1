"""Node-pressure eviction's pure core: QoS classes, --eviction-hard parsing, pressure, victim order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.agent.eviction import (
    Candidate,
    Evictor,
    Observation,
    Signal,
    Threshold,
    eviction_message,
    observe,
    parse_thresholds,
    pressures,
    victim_order,
)
from shoal.agent.run import DEFAULT_EVICTION_HARD, main
from shoal.model.pod import PodSpec
from shoal.model.qos import QosClass, qos_class
from shoal.runtime.fake import FakeDriver

Mi = 1024 * 1024


def spec(*resources: dict[str, Any], init: dict[str, Any] | None = None) -> PodSpec:
    containers = [{"name": f"c{i}", "image": "img", "resources": r} for i, r in enumerate(resources)]
    body: dict[str, Any] = {"containers": containers}
    if init is not None:
        body["initContainers"] = [{"name": "init", "image": "img", "resources": init}]
    return msgspec.convert(body, PodSpec, from_attributes=False, str_keys=True)


def both(cpu: Any, memory: Any) -> dict[str, Any]:
    return {"cpu": cpu, "memory": memory}


@pytest.mark.parametrize(("resources", "expected"), [
    ([{}], QosClass.BEST_EFFORT),
    ([{}, {}], QosClass.BEST_EFFORT),
    ([{"limits": both("500m", "64Mi")}], QosClass.GUARANTEED),  # limits imply requests
    ([{"requests": both("500m", "64Mi"), "limits": both("0.5", "64Mi")}], QosClass.GUARANTEED),  # same amounts
    ([{"requests": both("1", "1Gi"), "limits": both("1000m", "1024Mi")}], QosClass.GUARANTEED),
    ([{"requests": both("250m", "64Mi"), "limits": both("500m", "64Mi")}], QosClass.BURSTABLE),
    ([{"requests": {"memory": "16Mi"}}], QosClass.BURSTABLE),
    ([{"limits": {"memory": "64Mi"}}], QosClass.BURSTABLE),  # no cpu limit
    ([{"limits": both("1", "64Mi")}, {}], QosClass.BURSTABLE),  # one container without limits
    ([{"limits": both("1", "64Mi")}, {"limits": both(2, "128Mi")}], QosClass.GUARANTEED),
    ([{"requests": {"nvidia.com/gpu": 1}}], QosClass.BEST_EFFORT),  # only cpu and memory count
])
def test_qos_class_follows_kubernetes(resources: list[dict[str, Any]], expected: QosClass) -> None:
    assert qos_class(spec(*resources)) is expected


def test_init_containers_count_for_qos() -> None:
    guaranteed = {"limits": both("1", "64Mi")}
    assert qos_class(spec(guaranteed, init={})) is QosClass.BURSTABLE
    assert qos_class(spec({}, init={"requests": {"memory": "8Mi"}})) is QosClass.BURSTABLE
    assert qos_class(spec(guaranteed, init=guaranteed)) is QosClass.GUARANTEED


def test_default_thresholds_parse() -> None:
    assert parse_thresholds(DEFAULT_EVICTION_HARD) == (Threshold(Signal.MEMORY_AVAILABLE, quantity=100 * Mi),
                                                       Threshold(Signal.NODEFS_AVAILABLE, percent=5.0))
    assert parse_thresholds(" memory.available < 1.5Gi ") == (Threshold(Signal.MEMORY_AVAILABLE,
                                                                        quantity=1536 * Mi),)
    assert parse_thresholds("") == ()


@pytest.mark.parametrize(("text", "says"), [
    ("memory.available", '"memory.available" is not SIGNAL<VALUE'),
    ("memory.available>100Mi", "is not SIGNAL<VALUE"),
    ("memory.free<100Mi", 'unknown signal "memory.free"'),
    ("memory.available<100MB", 'did you mean "100Mi"'),
    ("nodefs.available<150%", "not a percentage between 0% and 100%"),
    ("nodefs.available<x%", "not a percentage"),
    ("memory.available<0", "must be a positive size"),
    ("memory.available<1Gi,memory.available<2Gi", "memory.available is given twice"),
])
def test_bad_thresholds_name_the_flag_and_the_fix(text: str, says: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_thresholds(text, "--eviction-hard")
    assert str(err.value).startswith("--eviction-hard: ") and says in str(err.value)


def test_the_agent_refuses_a_bad_flag_with_usage_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--server", "https://127.0.0.1:1", "--eviction-hard", "memory.avail<1Gi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --eviction-hard: unknown signal") and "Traceback" not in err


def test_pressure_against_sizes_and_percentages() -> None:
    thresholds = parse_thresholds("memory.available<100Mi,nodefs.available<10%")
    fine = {Signal.MEMORY_AVAILABLE: Observation(101 * Mi, 1024 * Mi),
            Signal.NODEFS_AVAILABLE: Observation(11 * Mi, 100 * Mi)}
    assert pressures(thresholds, fine) == []
    low = {Signal.MEMORY_AVAILABLE: Observation(60 * Mi, 1024 * Mi),
           Signal.NODEFS_AVAILABLE: Observation(9 * Mi, 100 * Mi)}
    found = pressures(thresholds, low)
    assert [p.threshold.signal for p in found] == [Signal.MEMORY_AVAILABLE, Signal.NODEFS_AVAILABLE]
    assert found[0].message == ("the node was low on memory: memory.available is 60Mi, below the eviction "
                                "threshold 100Mi")
    assert found[1].limit == 10 * Mi and "nodefs.available is 9Mi, below the eviction threshold 10%" in found[1].message


def test_observe_reads_meminfo_and_the_data_dir(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2048000 kB\nMemFree:          100 kB\nMemAvailable:     512000 kB\n")
    seen = observe(tmp_path, meminfo)
    assert seen[Signal.MEMORY_AVAILABLE] == Observation(512000 * 1024, 2048000 * 1024)
    disk = seen[Signal.NODEFS_AVAILABLE]
    assert 0 < disk.available <= disk.capacity


def cand(key: str, qos: QosClass, usage: int, request: int = 0, priority: int = 0) -> Candidate:
    return Candidate(uid=key, key=key, qos=qos, memory_usage=usage * Mi, memory_request=request * Mi,
                     priority=priority)


def test_victims_best_effort_then_burstable_by_overuse_then_guaranteed() -> None:
    pods = [cand("g-big", QosClass.GUARANTEED, 900, 900), cand("b-small-over", QosClass.BURSTABLE, 100, 90),
            cand("b-big-over", QosClass.BURSTABLE, 300, 100), cand("be-idle", QosClass.BEST_EFFORT, 1),
            cand("be-hog", QosClass.BEST_EFFORT, 150), cand("b-under", QosClass.BURSTABLE, 500, 600)]
    assert [c.key for c in victim_order(pods)] == ["be-hog", "be-idle", "b-big-over", "b-small-over", "b-under",
                                                   "g-big"]


def test_equal_overuse_evicts_the_lower_priority_first() -> None:
    pods = [cand("high", QosClass.BURSTABLE, 100, 50, priority=1000), cand("low", QosClass.BURSTABLE, 100, 50)]
    assert [c.key for c in victim_order(pods)] == ["low", "high"]


@given(st.lists(st.tuples(st.sampled_from(list(QosClass)), st.integers(0, 4096), st.integers(0, 4096)),
                max_size=30))
def test_no_guaranteed_pod_goes_before_a_best_effort_or_burstable_one(pods: list[tuple[QosClass, int, int]]) -> None:
    order = victim_order(cand(f"p{i}", q, u, r) for i, (q, u, r) in enumerate(pods))
    ranks = [[QosClass.BEST_EFFORT, QosClass.BURSTABLE, QosClass.GUARANTEED].index(c.qos) for c in order]
    assert ranks == sorted(ranks) and len(order) == len(pods)


def test_eviction_message_names_signal_values_and_usage() -> None:
    pressure = pressures(parse_thresholds("memory.available<100Mi"),
                         {Signal.MEMORY_AVAILABLE: Observation(40 * Mi, 1024 * Mi)})[0]
    message = eviction_message(pressure, cand("be", QosClass.BEST_EFFORT, 150))
    assert message == ("The node was low on memory: memory.available was 40Mi, below the eviction threshold 100Mi; "
                       "this BestEffort pod was using 150Mi of memory (request 0)")


class Worker:
    """What the Evictor sees of a PodWorker."""

    def __init__(self, name: str, resources: dict[str, Any], phase: str = "Running") -> None:
        self.uid, self.key, self.deleted, self.eviction = name, f"default/{name}", False, None
        self.status = {"phase": phase}
        self.pod = {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "uid": name},
                    "spec": {"containers": [{"name": "c", "image": "img", "resources": resources}]}}
        self.evicted = asyncio.Event()

    def evict(self, message: str) -> None:
        self.eviction = message
        self.evicted.set()


def test_the_evictor_takes_one_best_effort_pod_per_round_and_reports_the_node(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1048576 kB\nMemAvailable: 51200 kB\n")  # 50Mi left
    workers = [Worker("guaranteed", {"limits": both("1", "64Mi")}), Worker("a-done", {}, phase="Succeeded"),
               Worker("burstable", {"requests": {"memory": "8Mi"}}), Worker("besteffort", {})]
    evictor = Evictor(parse_thresholds("memory.available<100Mi,nodefs.available<1Ki"), tmp_path, FakeDriver(),
                      lambda: workers, "edge-1", meminfo=meminfo)
    victim = asyncio.run(evictor.check())
    assert victim is not None and victim.key == "default/besteffort"
    assert [w.uid for w in workers if w.eviction] == ["besteffort"]
    assert evictor.conditions()["MemoryPressure"][:2] == ("True", "NodeHasInsufficientMemory")
    assert evictor.conditions()["DiskPressure"][:2] == ("False", "NodeHasNoDiskPressure")
    event = evictor._events[0]
    assert (event["reason"], event["involvedObject"]["kind"], event["involvedObject"]["name"]) == (
        "Evicted", "Pod", "besteffort")
    assert asyncio.run(evictor.check()).key == "default/burstable"  # type: ignore[union-attr]
    meminfo.write_text("MemTotal: 1048576 kB\nMemAvailable: 512000 kB\n")
    assert asyncio.run(evictor.check()) is None and workers[0].eviction is None
    assert evictor.conditions()["MemoryPressure"][0] == "False"
