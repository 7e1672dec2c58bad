"""Readable durations, sizes and counts: what parses to what, what is refused, and exact round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segwatch.units import (
    format_count,
    format_duration,
    format_size,
    parse_count,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("0", 0.0),
        ("  2 s ", 2.0),
        ("90", 90.0),
        (7, 7.0),
        (0.25, 0.25),
        ("1e-3s", 0.001),
    ],
)
def test_durations_parse_to_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "5M", "1.5.s", "", "s", "inf", True, None, [1], float("nan")])
def test_durations_that_are_not_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"expected a (finite )?duration.*, got "):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.2, "200ms"), (1.0, "1s"), (1.5, "1.5s"), (90.0, "90s"), (300.0, "5m"), (3600.0, "1h")],
)
def test_durations_format_readably(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_formatted_durations_parse_back_exactly(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("512MiB", 512 * 2**20),
        ("4GiB", 4 * 2**30),
        ("1GB", 10**9),
        ("100k", 100_000),
        ("100kB", 100_000),
        ("1.5KiB", 1536),
        ("2tib", 2 * 2**40),
        ("123B", 123),
        ("123", 123),
        (4096, 4096),
    ],
)
def test_sizes_parse_to_bytes(text: object, num_bytes: int) -> None:
    assert parse_size(text) == num_bytes


def test_a_size_that_is_not_a_whole_number_of_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected a whole number, got '1.5B'"):
        parse_size("1.5B")


@pytest.mark.parametrize("text", ["4XB", "GiB", "", True, None, 1.5, "1 2"])
def test_things_that_are_not_sizes_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"expected a size such as .*, got "):
        parse_size(text)


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(4 * 2**30, "4GiB"), (10**9, "1GB"), (1536, "1536B"), (2048, "2KiB"), (1234, "1234B"), (0, "0B")],
)
def test_sizes_format_with_the_smallest_whole_number_of_units(num_bytes: int, text: str) -> None:
    assert format_size(num_bytes) == text


@given(st.integers(min_value=0, max_value=2**62))
def test_formatted_sizes_parse_back_exactly(num_bytes: int) -> None:
    assert parse_size(format_size(num_bytes)) == num_bytes


@pytest.mark.parametrize(
    ("text", "count"), [("256M", 256 * 10**6), ("1G", 10**9), ("100k", 10**5), ("4096", 4096), (12, 12)]
)
def test_counts_parse_with_decimal_multipliers(text: object, count: int) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["1GiB", "1GB", "many", False])
def test_byte_units_are_not_counts(text: object) -> None:
    with pytest.raises(ValueError, match=r"expected a count such as .*, got "):
        parse_count(text)


@given(st.integers(min_value=0, max_value=10**15))
def test_formatted_counts_parse_back_exactly(count: int) -> None:
    assert parse_count(format_count(count)) == count


@pytest.mark.parametrize(("count", "text"), [(10**9, "1G"), (256 * 10**6, "256M"), (1500, "1500"), (0, "0")])
def test_counts_format_with_the_smallest_whole_number_of_units(count: int, text: str) -> None:
    assert format_count(count) == text
