from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.model.quantity import (
    QuantityError,
    format_bytes,
    format_cpu_millis,
    parse_bytes,
    parse_cpu_millis,
    parse_resource,
)


@pytest.mark.parametrize(("text", "millis"), [("500m", 500), ("2", 2000), ("0.5", 500), ("1.25", 1250), (3, 3000)])
def test_cpu(text: str | int, millis: int) -> None:
    assert parse_cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "size"), [("64Mi", 64 * 2**20), ("1G", 10**9), ("100", 100), ("1.5Gi", 3 * 2**29),
                                            ("2k", 2000), (4096, 4096)])
def test_bytes(text: str | int, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize(("text", "hint"), [("64MB", '"64Mi" (mebibytes) or "64M" (megabytes)'),
                                            ("1GB", '"1Gi"'), ("10 KB", '"10Ki"')])
def test_common_slips_get_a_hint(text: str, hint: str) -> None:
    with pytest.raises(QuantityError, match="did you mean") as info:
        parse_bytes(text)
    assert hint in str(info.value)


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.2.3", "5x"])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_resource("memory", text)


def test_milli_is_not_a_size() -> None:
    with pytest.raises(QuantityError, match="milli"):
        parse_bytes("64m")


@given(st.integers(min_value=0, max_value=2**50))
def test_format_bytes_round_trips(size: int) -> None:
    assert parse_bytes(format_bytes(size)) == size


@given(st.integers(min_value=0, max_value=10**7))
def test_format_cpu_round_trips(millis: int) -> None:
    assert parse_cpu_millis(format_cpu_millis(millis)) == millis
