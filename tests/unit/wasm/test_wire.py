"""The driver↔host wire format, the CRI log lines and the agent-side import cost."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.model.pod import ContainerState
from shoal.runtime.lifecycle import InvalidTransition
from shoal.runtime.oci.logs import parse_line
from shoal.runtime.protocol import ContainerNotFound, ContainerSpec, DriverError, Resources, SpecError, StopReason
from shoal.runtime.wasm.crilog import format_chunk
from shoal.runtime.wasm.messages import InstanceStatus, Op, Reply, Request, raise_for, reply_error, to_info


def _roundtrip(reply: Reply) -> Reply:
    return msgspec.json.decode(msgspec.json.encode(reply), type=Reply)


@pytest.mark.parametrize("exc", [
    ContainerNotFound("c1"),
    InvalidTransition(ContainerState.CREATED, ContainerState.PAUSED, "c1"),
    SpecError("image", "no .wasm file in the image"),
    DriverError("boom"),
])
def test_errors_cross_the_socket_as_the_same_driver_error(exc: DriverError) -> None:
    with pytest.raises(type(exc)) as raised:
        raise_for(_roundtrip(reply_error(exc)), "c1")
    expected = f"wasm host: {exc}" if type(exc) is DriverError else str(exc)
    assert str(raised.value) == expected


def test_a_spec_and_a_status_survive_the_wire() -> None:
    spec = ContainerSpec(id="c", name="n", pod_uid="u", pod_name="p", lower_dirs=("/l",), args=("a",),
                         env=(("K", "V"),), resources=Resources(cpu_limit_millis=250, memory_limit_bytes=1 << 21))
    req = msgspec.json.decode(msgspec.json.encode(Request(op=Op.CREATE, id="c", spec=spec)), type=Request)
    assert req.spec == spec
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    status = InstanceStatus(id="c", name="n", pod_uid="u", state=ContainerState.STOPPED, exit_code=3,
                            started_at=now, finished_at=now, reason=StopReason.ERROR, message="m")
    info = to_info(_roundtrip(Reply(ok=True, status=status)).status or status)
    assert (info.state, info.exit_code, info.reason, info.started_at) == (ContainerState.STOPPED, 3,
                                                                          StopReason.ERROR, now)


def test_chunks_become_full_and_partial_cri_lines() -> None:
    out = format_chunk("stdout", b"one\ntwo\nthr", now=lambda: "T")
    assert out == "T stdout F one\nT stdout F two\nT stdout P thr\n"
    assert format_chunk("stderr", b"", now=lambda: "T") == ""


@given(st.binary(max_size=200), st.sampled_from(["stdout", "stderr"]))
def test_every_chunk_reads_back_with_the_oci_log_reader(chunk: bytes, stream: str) -> None:
    written = format_chunk(stream, chunk, now=lambda: "2026-01-01T00:00:00Z")
    lines = [parse_line(raw) for raw in written.split("\n")[:-1]]
    assert all(line is not None and line.stream == stream for line in lines)
    text = chunk.decode("utf-8", errors="replace")
    assert "".join(x.message + ("" if x.partial else "\n") for x in lines if x) == text


def test_the_agent_side_does_not_import_wasmtime() -> None:
    code = "import sys, shoal.runtime.wasm, shoal.runtime.wasm.driver; print('wasmtime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
