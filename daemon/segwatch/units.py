"""Readable quantities: durations, byte sizes and counts, parsed from config text and formatted back.

Every formatter is the inverse of its parser: `parse_x(format_x(v)) == v` exactly, so a rendered config
loads back to the same values. Also the one spelling of a run's name for people (`run_label`).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = [
    "format_count",
    "format_duration",
    "format_size",
    "parse_count",
    "parse_duration",
    "parse_run_label",
    "parse_size",
    "run_label",
]

# How the unnamed run of a flat layout (run "") is written in log lines, status, metrics and on the command line:
# an empty label value reads as absent.
UNNAMED_RUN = "."

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<unit>[A-Za-z]*)\s*")

# Duration units are lower-case only: an upper-case "M" reads as months or mega as often as minutes.
_SECONDS_PER: dict[str, float] = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}

_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_BYTES_PER: dict[str, int] = {
    "": 1,
    "b": 1,
    **_DECIMAL,
    **{f"{prefix}b": factor for prefix, factor in _DECIMAL.items()},
    **_BINARY,
    **{f"{prefix}b": factor for prefix, factor in _BINARY.items()},
}
_COUNT_PER: dict[str, int] = {"": 1, **_DECIMAL}

# Preferred spellings for output, largest unit first; binary before decimal so 4GiB stays "4GiB".
_SIZE_SPELLINGS = (
    ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10),
    ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3),
)  # fmt: skip
_COUNT_SPELLINGS = (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))

DURATION_EXAMPLES = "a duration such as 200ms, 1.5s, 5m, 1h or a number of seconds"
SIZE_EXAMPLES = "a size such as 512MiB, 4GiB, 1GB, 100k or a number of bytes"
COUNT_EXAMPLES = "a count such as 4096, 100k, 256M or 1G"


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string like "200ms", "1.5s", "5m", "1h"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _QUANTITY.fullmatch(value)):
        unit = match["unit"]
        if unit == "ms":
            # Divide rather than multiply by 0.001, so "200ms" is exactly the float 0.2.
            seconds = float(match["number"]) / 1000.0
        elif unit in _SECONDS_PER:
            seconds = float(match["number"]) * _SECONDS_PER[unit]
        else:
            raise ValueError(f"expected {DURATION_EXAMPLES}, got {value!r}")
    else:
        raise ValueError(f"expected {DURATION_EXAMPLES}, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable spelling among h, m, s and ms that parses back to exactly `seconds`."""
    if seconds == 0:
        return "0s"
    for unit in ("h", "m"):
        count = seconds / _SECONDS_PER[unit]
        text = f"{int(count)}{unit}" if count.is_integer() else ""
        if text and parse_duration(text) == seconds:
            return text
    if abs(seconds) < 1:
        text = f"{_short(seconds * 1000.0)}ms"
        if parse_duration(text) == seconds:
            return text
    return f"{_short(seconds)}s"


def parse_size(value: object) -> int:
    """Bytes from an integer or a string like "512MiB", "4GiB", "1GB", "100k" (k, M, G, T are decimal)."""
    return _parse_scaled(value, _BYTES_PER, SIZE_EXAMPLES)


def format_size(num_bytes: int) -> str:
    """The spelling with the smallest whole number of units, e.g. "4GiB", "1GB", "1234B"."""
    return _format_scaled(num_bytes, _SIZE_SPELLINGS, plain_suffix="B")


def parse_count(value: object) -> int:
    """A whole count from an integer or a string like "100k", "256M", "1G" (decimal multipliers)."""
    return _parse_scaled(value, _COUNT_PER, COUNT_EXAMPLES)


def format_count(count: int) -> str:
    """The spelling with the smallest whole number of units, e.g. "1G", "256M", "1234"."""
    return _format_scaled(count, _COUNT_SPELLINGS, plain_suffix="")


def _parse_scaled(value: object, factors: dict[str, int], examples: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = _QUANTITY.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["unit"].lower() not in factors:
        raise ValueError(f"expected {examples}, got {value!r}")
    # Fraction keeps "1.5GiB" exact; a float would round it.
    amount = Fraction(match["number"]) * factors[match["unit"].lower()]
    if amount.denominator != 1:
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(amount)


def _format_scaled(value: int, spellings: tuple[tuple[str, int], ...], plain_suffix: str) -> str:
    candidates = [(value // factor, unit) for unit, factor in spellings if value and value % factor == 0]
    if not candidates:
        return f"{value}{plain_suffix}"
    # min() keeps the first of equal counts, which is the preferred (binary) spelling.
    count, unit = min(candidates, key=lambda candidate: abs(candidate[0]))
    return f"{count}{unit}"


def _short(number: float) -> str:
    text = repr(number)
    return text[:-2] if text.endswith(".0") else text


def run_label(run: str) -> str:
    """A run's name as people see it: the unnamed run of a flat layout is "."."""
    return run or UNNAMED_RUN


def parse_run_label(label: str) -> str:
    """The run a label names (the inverse of `run_label`): "." is the unnamed run."""
    return "" if label == UNNAMED_RUN else label
