"""``shoal register`` as a user runs it: bad input is a usage error naming the fix, --heartbeat keeps a
3 s registration alive past its TTL, Ctrl-C (SIGINT) and SIGTERM stop it cleanly, and then it expires."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest
from tests.conftest import SHOAL, RunningServer, stop_process, wait_for

NS = "/api/v1/namespaces/default"


def renew_time(http: httpx.Client, name: str) -> str | None:
    response = http.get(f"{NS}/endpointregistrations/{name}")
    return str(response.json().get("status", {}).get("renewTime", "")) if response.status_code == 200 else None


def test_usage_errors_name_the_fix(server: RunningServer) -> None:
    no_port = server.cli("register", "plc", "192.0.2.7")
    assert no_port.returncode == 2 and 'is not ADDRESS:PORT; e.g. 192.0.2.7:502' in no_port.stderr
    v6 = server.cli("register", "plc", "2001:db8::7:502")
    assert v6.returncode == 2 and "in brackets, e.g. [2001:db8::7]:502" in v6.stderr
    ttl = server.cli("register", "plc", "192.0.2.7:502", "--ttl", "soon")
    assert ttl.returncode == 2 and "write it like 30s, 2m or 1h" in ttl.stderr
    name = server.cli("register", "PLC", "192.0.2.7:502")
    assert name.returncode == 1 and 'service "PLC" is not a Service name' in name.stderr
    assert "Traceback" not in no_port.stderr + v6.stderr + ttl.stderr + name.stderr


def test_register_once_then_again_is_unchanged_and_renewed(server: RunningServer) -> None:
    first = server.cli("register", "plc", "192.0.2.9:502", "--ttl", "1h")
    assert first.returncode == 0, first.stderr
    assert "endpointregistration.shoal/plc-192-0-2-9-502 created (plc -> 192.0.2.9:502, ttl 3600s)" in first.stdout
    with server.http() as http:
        before = renew_time(http, "plc-192-0-2-9-502")
        again = server.cli("register", "plc", "192.0.2.9:502", "--ttl", "1h")
        assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout + again.stderr
        assert before and renew_time(http, "plc-192-0-2-9-502") not in (None, before)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_heartbeat_keeps_it_alive_until_stopped(server: RunningServer, stop_signal: int) -> None:
    with server.http() as http:
        assert http.post(f"{NS}/services", json={"apiVersion": "shoal/v1", "kind": "Service", "metadata": {
            "name": "cam"}, "spec": {"ports": [{"name": "rtsp", "port": 554}]}}).status_code == 201
    process = subprocess.Popen([*SHOAL, "--config", str(server.config_path), "register", "cam", "192.0.2.8:554",
                                "--name", "cam-8", "--ttl", "3s", "--heartbeat"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        with server.http() as http:
            wait_for(lambda: renew_time(http, "cam-8"), timeout=15, message="registration created")
            seen = {renew_time(http, "cam-8")}
            started = time.monotonic()
            while time.monotonic() - started < 4.5:  # past the 3 s TTL: alive only through heartbeats
                value = renew_time(http, "cam-8")
                assert value is not None, "registration expired while heartbeating"
                seen.add(value)
                time.sleep(0.2)
            assert len(seen) >= 3, f"expected a renewal about every second, saw {seen}"
            eps = http.get(f"{NS}/endpoints/cam").json()
            assert [a["ip"] for s in eps["subsets"] for a in s["addresses"]] == ["192.0.2.8"]

            os.killpg(process.pid, stop_signal)
            out, err = process.communicate(timeout=10)
            assert process.returncode == 0, err
            assert "heartbeating every 1.0s; Ctrl-C to stop" in out
            assert "stopped heartbeating; endpointregistration.shoal/cam-8 expires 3s after its last heartbeat" in out
            wait_for(lambda: renew_time(http, "cam-8") is None, timeout=6, message="expired after the CLI stopped")
    finally:
        stop_process(process)
