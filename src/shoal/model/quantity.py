"""Resource quantities as users write them: CPU ("500m", "2") and sizes ("64Mi", "1G").

Parsing is strict and errors carry a hint for the common slips (``64MB`` → ``64Mi``).
Pure functions only.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_SLIPS = {"KB": ("Ki", "k"), "MB": ("Mi", "M"), "GB": ("Gi", "G"), "TB": ("Ti", "T"),
          "K": ("Ki", "k"), "mb": ("Mi", "M"), "gb": ("Gi", "G"), "kb": ("Ki", "k"),
          "Kb": ("Ki", "k"), "Mb": ("Mi", "M"), "Gb": ("Gi", "G"), "MiB": ("Mi", "M"),
          "GiB": ("Gi", "G"), "KiB": ("Ki", "k")}
_UNIT_NAMES = {"Ki": "kibibytes", "Mi": "mebibytes", "Gi": "gibibytes", "Ti": "tebibytes",
               "k": "kilobytes", "M": "megabytes", "G": "gigabytes", "T": "terabytes"}


class QuantityError(ValueError):
    """A quantity string that does not parse; ``str()`` is the message with the hint."""


def _split(text: str) -> tuple[Decimal, str]:
    match = _QUANTITY.match(text.strip())
    if not match:
        raise QuantityError(_explain(text))
    try:
        return Decimal(match.group(1)), match.group(2) or ""
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise QuantityError(_explain(text)) from exc


def _explain(text: str) -> str:
    match = re.match(r"^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)$", text.strip())
    if match and match.group(2) in _SLIPS:
        number = match.group(1)
        binary, decimal = _SLIPS[match.group(2)]
        return (f'"{text}" is not a quantity; did you mean "{number}{binary}" ({_UNIT_NAMES[binary]}) '
                f'or "{number}{decimal}" ({_UNIT_NAMES[decimal]})?')
    return (f'"{text}" is not a quantity; write a number with an optional suffix, '
            'e.g. "500m" or "2" for CPU, "64Mi" or "1G" for sizes')


def parse_cpu_millis(text: str | int | float) -> int:
    """CPU in millicores: "500m" → 500, "2" → 2000, "0.5" → 500."""
    if isinstance(text, int | float):
        return int(Decimal(str(text)) * 1000)
    number, suffix = _split(text)
    if suffix == "m":
        return int(number)
    if suffix in _DECIMAL:
        return int(number * _DECIMAL[suffix] * 1000)
    raise QuantityError(f'"{text}" is not a CPU quantity; use cores ("2", "0.5") or millicores ("500m")')


def parse_bytes(text: str | int | float) -> int:
    """A size in bytes: "64Mi" → 67108864, "1G" → 10**9, "100" → 100."""
    if isinstance(text, int | float):
        return int(text)
    number, suffix = _split(text)
    if suffix in _BINARY:
        return int(number * _BINARY[suffix])
    if suffix == "m":
        raise QuantityError(f'"{text}" is not a size: "m" means milli; did you mean "{number}Mi" or "{number}M"?')
    return int(number * _DECIMAL[suffix])


def parse_count(text: str | int | float) -> int:
    """A plain count such as pods or devices ("110", 2)."""
    if isinstance(text, int | float):
        return int(text)
    number, suffix = _split(text)
    if suffix not in ("", "k"):
        raise QuantityError(f'"{text}" is not a count; write a whole number such as "110"')
    return int(number * _DECIMAL[suffix])


def parse_resource(name: str, value: str | int | float) -> int:
    """Parse a resource by its name: cpu → millicores, memory/storage → bytes, others → counts."""
    if name == "cpu":
        return parse_cpu_millis(value)
    if name in ("memory", "ephemeral-storage", "storage") or name.endswith("-storage"):
        return parse_bytes(value)
    return parse_count(value)


def format_cpu_millis(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_bytes(size: int) -> str:
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)
