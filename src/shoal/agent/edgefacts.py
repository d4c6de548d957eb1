"""Edge facts a node reports for placement: TCP connect RTT to each zone, and its power supply.

``parse_zone_probes`` reads ``--zone-probe ZONE=HOST:PORT``; ``measure_rtts`` times TCP connects
(median of 3) to each zone's target, the node's own zone counting 0 ms. ``PowerReader`` reads
/sys/class/power_supply (Mains/Battery, capacity, online, power_now) and RAPL energy counters
(/sys/class/powercap/intel-rapl:N/energy_uj → watts over the interval) under a root it is given,
so tests use a fake tree; ``power_from_labels`` is the operator's fallback (``shoal.io/power-source``,
``shoal.io/battery-percent``, ``shoal.io/watts``). ``worth_writing`` says whether a new reading
changed enough to write the Node (RTT by > 20 % or 1 ms, battery by >= 1 %). No server calls here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LABEL_BATTERY",
    "LABEL_POWER_SOURCE",
    "LABEL_WATTS",
    "PowerReader",
    "measure_rtts",
    "merge_power",
    "parse_zone_probes",
    "power_from_labels",
    "worth_writing",
]

LABEL_POWER_SOURCE = "shoal.io/power-source"
LABEL_BATTERY = "shoal.io/battery-percent"
LABEL_WATTS = "shoal.io/watts"
_EXAMPLE = "e.g. --zone-probe plant-a=10.0.0.5:6443"


def parse_zone_probes(items: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``["plant-a=10.0.0.5:6443", ...]`` → {zone: (host, port)}; a bad item raises ValueError naming it."""
    targets: dict[str, tuple[str, int]] = {}
    for item in items:
        zone, sep, address = item.partition("=")
        host, colon, port = address.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not zone.strip() or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'--zone-probe "{item}" is not ZONE=HOST:PORT with a port 1-65535 ({_EXAMPLE})')
        targets[zone.strip()] = (host, int(port))
    return targets


async def _connect_ms(host: str, port: int, timeout: float) -> float | None:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return None
    elapsed = (time.perf_counter() - started) * 1000
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return elapsed


async def _zone_rtt(host: str, port: int, attempts: int, timeout: float) -> float | None:
    samples = [ms for ms in [await _connect_ms(host, port, timeout) for _ in range(attempts)] if ms is not None]
    if not samples:
        return None
    ordered, mid = sorted(samples), len(samples) // 2  # the median, without importing statistics (decimal)
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 3)


async def measure_rtts(targets: Mapping[str, tuple[str, int]], own_zone: str = "", attempts: int = 3,
                       timeout: float = 2.0) -> dict[str, float]:
    """Median TCP connect time per zone in ms; unreachable zones are left out, the own zone is 0."""
    zones = [z for z in targets if z != own_zone]
    results = await asyncio.gather(*(_zone_rtt(*targets[z], attempts, timeout) for z in zones))
    rtts = {zone: ms for zone, ms in zip(zones, results, strict=True) if ms is not None}
    if own_zone:
        rtts[own_zone] = 0.0
    return dict(sorted(rtts.items()))


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class PowerReader:
    """Power facts from a sysfs tree (``/sys`` by default); RAPL watts need two readings."""

    def __init__(self, sys_root: Path = Path("/sys")) -> None:
        self.supplies = sys_root / "class" / "power_supply"
        self.powercap = sys_root / "class" / "powercap"
        self._energy: dict[str, tuple[int, float]] = {}  # package → (energy_uj, monotonic time)

    def read(self, now: float | None = None) -> dict[str, Any] | None:
        """``{"source", "batteryPercent"?, "watts"?}`` from sysfs, or None when it says nothing."""
        now = time.monotonic() if now is None else now
        power: dict[str, Any] = {}
        mains_online = battery_seen = False
        battery_watts = 0.0
        capacities: list[float] = []
        for supply in sorted(self.supplies.glob("*")) if self.supplies.is_dir() else []:
            kind = _read(supply / "type")
            if kind in ("Mains", "USB") and _read(supply / "online") == "1":
                mains_online = True
            elif kind == "Battery" and _read(supply / "present") != "0":
                battery_seen = True
                capacity = _number(_read(supply / "capacity"))
                if capacity is not None:
                    capacities.append(capacity)
                battery_watts += (_number(_read(supply / "power_now")) or 0.0) / 1e6
        if mains_online or battery_seen:
            power["source"] = "mains" if mains_online or not battery_seen else "battery"
        if capacities:
            power["batteryPercent"] = round(sum(capacities) / len(capacities), 1)
        watts = self._rapl_watts(now)
        if watts is None and power.get("source") == "battery" and battery_watts > 0:
            watts = battery_watts
        if watts is not None:
            power["watts"] = round(watts, 2)
        return power or None

    def _rapl_watts(self, now: float) -> float | None:
        """Average package power since the previous reading (top-level zones only, no double count)."""
        zones = [z for z in sorted(self.powercap.glob("intel-rapl:*")) if z.name.count(":") == 1]
        total, measured = 0.0, False
        for zone in zones:
            energy = _number(_read(zone / "energy_uj"))
            if energy is None:
                continue
            previous = self._energy.get(zone.name)
            self._energy[zone.name] = (int(energy), now)
            if previous is None or now <= previous[1]:
                continue
            delta = int(energy) - previous[0]
            if delta < 0:  # the counter wrapped
                delta += int(_number(_read(zone / "max_energy_range_uj")) or 0)
            if delta >= 0:
                total += delta / 1e6 / (now - previous[1])
                measured = True
        return total if measured else None


def power_from_labels(labels: Mapping[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The operator's power labels as a power status, and a message per label that is malformed."""
    power: dict[str, Any] = {}
    problems: list[str] = []
    source = labels.get(LABEL_POWER_SOURCE, "").strip().lower()
    if source in ("mains", "battery"):
        power["source"] = source
    elif source:
        problems.append(f'label {LABEL_POWER_SOURCE}="{source}" must be "mains" or "battery"')
    for label, key, upper in ((LABEL_BATTERY, "batteryPercent", 100.0), (LABEL_WATTS, "watts", 1e6)):
        if label not in labels:
            continue
        value = _number(labels[label].strip().rstrip("%W"))
        if value is None or not 0 <= value <= upper:
            problems.append(f'label {label}="{labels[label]}" must be a number from 0 to {upper:g}')
        else:
            power[key] = value
    if power and "source" not in power:
        power["source"] = "battery" if "batteryPercent" in power else "mains"
    return power or None, problems


def merge_power(measured: dict[str, Any] | None, labelled: dict[str, Any] | None) -> dict[str, Any] | None:
    """Measured facts win; the operator's labels fill what the hardware does not tell."""
    if measured is None or labelled is None:
        return measured or labelled
    return {**labelled, **measured}


def _moved(old: float | None, new: float | None, relative: float, absolute: float) -> bool:
    if old is None or new is None:
        return old != new
    return abs(new - old) > max(absolute, relative * abs(old))


def worth_writing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` ({"rttMs", "power"}) differs from what the Node shows (``old``) enough to write."""
    old_rtt, new_rtt = old.get("rttMs") or {}, new.get("rttMs") or {}
    if set(old_rtt) != set(new_rtt) or any(_moved(old_rtt[z], new_rtt[z], 0.2, 1.0) for z in new_rtt):
        return True
    old_power, new_power = old.get("power") or {}, new.get("power") or {}
    if old_power.get("source") != new_power.get("source"):
        return True
    old_battery, new_battery = old_power.get("batteryPercent"), new_power.get("batteryPercent")
    if (old_battery is None) != (new_battery is None) or (
            old_battery is not None and new_battery is not None and abs(new_battery - old_battery) >= 1):
        return True
    return _moved(old_power.get("watts"), new_power.get("watts"), 0.2, 1.0)
