"""Edge facts: zone probe flags, RTT medians, power from a fake sysfs tree and RAPL counters, the
operator's label fallback, and writing the Node only when a value moved meaningfully."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.edgefacts import (
    PowerReader,
    measure_rtts,
    merge_power,
    parse_zone_probes,
    power_from_labels,
    worth_writing,
)
from shoal.agent.edgestatus import EdgeStatusReporter
from shoal.client import AsyncClient, ClientConfig
from shoal.client.fake import FakeApi


def test_zone_probe_flags_parse_and_bad_ones_say_how() -> None:
    assert parse_zone_probes(["plant-a=10.0.0.5:6443", "cloud=[2001:db8::1]:443"]) == {
        "plant-a": ("10.0.0.5", 6443), "cloud": ("2001:db8::1", 443)}
    for bad in ("plant-a", "plant-a=10.0.0.5", "=1.2.3.4:80", "a=host:http", "a=host:70000"):
        with pytest.raises(ValueError, match=r"is not ZONE=HOST:PORT.*--zone-probe plant-a=10.0.0.5:6443"):
            parse_zone_probes([bad])


def test_rtt_is_measured_to_listening_zones_and_own_zone_is_zero() -> None:
    async def main() -> dict[str, float]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with_closed = {"near": ("127.0.0.1", port), "down": ("127.0.0.1", 1), "home": ("127.0.0.1", port)}
        try:
            return await measure_rtts(with_closed, own_zone="home", timeout=1.0)
        finally:
            server.close()

    rtts = asyncio.run(main())
    assert set(rtts) == {"near", "home"}  # an unreachable zone is left out, not reported as 0
    assert rtts["home"] == 0.0 and 0 < rtts["near"] < 100


def _write(root: Path, rel: str, value: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")


def test_power_from_sysfs_battery_and_mains(tmp_path: Path) -> None:
    reader = PowerReader(tmp_path)
    assert reader.read() is None  # no power_supply, no RAPL: nothing to say
    _write(tmp_path, "class/power_supply/AC/type", "Mains")
    _write(tmp_path, "class/power_supply/AC/online", "0")
    _write(tmp_path, "class/power_supply/BAT0/type", "Battery")
    _write(tmp_path, "class/power_supply/BAT0/capacity", "72")
    _write(tmp_path, "class/power_supply/BAT0/power_now", "4100000")
    assert reader.read() == {"source": "battery", "batteryPercent": 72.0, "watts": 4.1}
    _write(tmp_path, "class/power_supply/AC/online", "1")
    assert reader.read() == {"source": "mains", "batteryPercent": 72.0}


def test_rapl_watts_average_over_the_interval_and_survive_a_wrap(tmp_path: Path) -> None:
    _write(tmp_path, "class/power_supply/AC/type", "Mains")
    _write(tmp_path, "class/power_supply/AC/online", "1")
    pkg, sub = "class/powercap/intel-rapl:0", "class/powercap/intel-rapl:0:0"
    _write(tmp_path, f"{pkg}/max_energy_range_uj", "1000000000")
    _write(tmp_path, f"{pkg}/energy_uj", "999000000")
    _write(tmp_path, f"{sub}/energy_uj", "5")  # a subzone: part of the package, never added again
    reader = PowerReader(tmp_path)
    assert reader.read(now=100.0) == {"source": "mains"}  # one reading is not a rate yet
    _write(tmp_path, f"{pkg}/energy_uj", "59000000")  # wrapped: 1 J + 59 J = 60 J in 10 s
    _write(tmp_path, f"{sub}/energy_uj", "900000000")
    assert reader.read(now=110.0) == {"source": "mains", "watts": 6.0}


def test_power_labels_fill_in_and_bad_labels_are_named() -> None:
    power, problems = power_from_labels({"shoal.io/power-source": "Battery", "shoal.io/battery-percent": "55",
                                         "shoal.io/watts": "3.5W"})
    assert power == {"source": "battery", "batteryPercent": 55.0, "watts": 3.5} and problems == []
    power, problems = power_from_labels({"shoal.io/power-source": "solar", "shoal.io/battery-percent": "150"})
    assert power is None
    assert problems == ['label shoal.io/power-source="solar" must be "mains" or "battery"',
                        'label shoal.io/battery-percent="150" must be a number from 0 to 100']
    assert merge_power({"source": "mains"}, {"source": "battery", "watts": 9.0}) == {"source": "mains", "watts": 9.0}


@pytest.mark.parametrize(("old", "new", "write"), [
    ({"a": 10.0}, {"a": 11.9}, False),   # +19 %
    ({"a": 10.0}, {"a": 12.1}, True),    # +21 %
    ({"a": 0.2}, {"a": 1.1}, False),     # +0.9 ms: under 1 ms
    ({"a": 0.2}, {"a": 1.3}, True),
    ({"a": 1.0}, {"a": 1.0, "b": 50.0}, True),  # a new zone
    ({"a": 1.0, "b": 5.0}, {"a": 1.0}, True),   # a zone became unreachable
])
def test_rtt_writes_only_on_meaningful_change(old: dict[str, float], new: dict[str, float], write: bool) -> None:
    assert worth_writing({"rttMs": old}, {"rttMs": new}) is write


def test_battery_writes_at_one_percent_and_source_changes_always() -> None:
    def power(**p: Any) -> dict[str, Any]:
        return {"rttMs": {}, "power": {"source": "battery", **p}}

    assert not worth_writing(power(batteryPercent=50.0), power(batteryPercent=50.6))
    assert worth_writing(power(batteryPercent=50.0), power(batteryPercent=49.0))
    assert worth_writing(power(batteryPercent=50.0), {"rttMs": {}, "power": {"source": "mains", "batteryPercent": 50}})
    assert not worth_writing(power(watts=4.0), power(watts=4.5))


def test_reporter_patches_the_node_only_when_facts_change(tmp_path: Path) -> None:
    api = FakeApi()
    api.seed({"apiVersion": "shoal/v1", "kind": "Node", "metadata": {"name": "gw-1", "labels": {
        "shoal.io/zone": "plant-a", "shoal.io/power-source": "battery", "shoal.io/battery-percent": "80"}},
        "status": {"phase": "Online"}})

    async def main() -> list[bool]:
        config = ClientConfig(server="http://fake", token=api.token)
        reporter = EdgeStatusReporter("gw-1", {"plant-a": ("127.0.0.1", 1)}, {}, PowerReader(tmp_path))
        async with AsyncClient(config, transport=api.transport()) as client:
            writes = [await reporter.step(client, refresh=True), await reporter.step(client, refresh=False)]
            node = await client.get("Node", None, "gw-1")
            labels = {**node["metadata"]["labels"], "shoal.io/battery-percent": "78"}
            await client.merge_patch("Node", None, "gw-1", {"metadata": {"labels": labels}})
            writes.append(await reporter.step(client, refresh=True))
            return writes

    assert asyncio.run(main()) == [True, False, True]
    patches = [json.loads(r.content) for r in api.requests if r.method == "PATCH"]
    assert [p["status"] for p in patches if "status" in p] == [
        {"rttMs": {"plant-a": 0.0}, "power": {"source": "battery", "batteryPercent": 80.0}},
        {"rttMs": {"plant-a": 0.0}, "power": {"source": "battery", "batteryPercent": 78.0}}]
    node = next(o for k, o in api.objects.items() if k[0] in ("Node", "nodes") or o.get("kind") == "Node")
    assert node["status"]["phase"] == "Online"  # a merge patch: the server's fields stay
