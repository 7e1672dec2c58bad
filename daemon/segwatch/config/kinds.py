"""The kinds of value a config holds: each parses what people write into a plain value (durations, sizes and
counts into floats and ints, so nothing downstream ever sees "200ms") and says what it expected when that fails.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, get_args

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

from segwatch.intake.patterns import check_pattern
from segwatch.output.storage import URL_SCHEME
from segwatch.units import format_count, format_duration, format_size, parse_count, parse_duration, parse_size

PaletteSpec = str | tuple[tuple[int, int, int], ...]


# A config value quoted in a message is clipped: one line per problem, whatever a file (or an alias bomb) holds.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80
_SHOWN.maxdict = _SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxset = 6


def shown(value: object) -> str:
    """repr(value), clipped; never formats an unbounded number or walks an unbounded structure."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    try:
        return _SHOWN.repr(value)
    except Exception:
        return f"a {type(value).__name__} that cannot be shown"


def one_of(kind: object) -> BeforeValidator:
    """One of a Literal's values, or of a tuple of words a pure module owns."""
    choices = kind if isinstance(kind, tuple) else get_args(kind)

    def check(value: object) -> object:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {shown(value)}")
        return value

    return BeforeValidator(check)


def integer(low: int, high: int | None = None) -> BeforeValidator:
    wanted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def check(value: object) -> int:
        # bool is an int subclass, and YAML turns `yes` into True: that is never a count.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {wanted}, got {shown(value)}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected {wanted}, got {shown(value)}")
        return value

    return BeforeValidator(check)


def duration(*, allow_zero: bool) -> BeforeValidator:
    def check(value: object) -> float:
        seconds = parse_duration(value)
        if seconds < 0 or (seconds == 0 and not allow_zero):
            wanted = "a duration >= 0" if allow_zero else "a positive duration"
            raise ValueError(f"expected {wanted}, got {shown(value)}")
        return seconds

    return BeforeValidator(check)


def positive(parse: Callable[[object], int], what: str) -> BeforeValidator:
    def check(value: object) -> int:
        amount = parse(value)
        if amount <= 0:
            raise ValueError(f"expected a positive {what}, got {shown(value)}")
        return amount

    return BeforeValidator(check)


def _count_text(count: int) -> str | int:
    text = format_count(count)
    # A bare number stays a YAML int rather than becoming the quoted string '1234'.
    return count if text == str(count) else text


AS_DURATION = PlainSerializer(format_duration, return_type=str, when_used="json")
Seconds = Annotated[float, duration(allow_zero=True), AS_DURATION]
PositiveSeconds = Annotated[float, duration(allow_zero=False), AS_DURATION]
Bytes = Annotated[int, positive(parse_size, "size"), PlainSerializer(format_size, when_used="json")]
Count = Annotated[int, positive(parse_count, "count"), PlainSerializer(_count_text, when_used="json")]


def backoff(value: object) -> tuple[float, float]:
    wanted = "two positive durations [first, longest] with first <= longest"
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"expected {wanted}, got {shown(value)}")
    first, longest = (parse_duration(part) for part in value)
    if not 0 < first <= longest:
        raise ValueError(f"expected {wanted}, got {shown(value)}")
    return first, longest


def panel_size(value: object) -> tuple[int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in value)
    ):
        raise ValueError(f"expected two positive integers, got {shown(value)}")
    return value[0], value[1]


def unit_interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"expected a number between 0 and 1 (exclusive), got {shown(value)}")
    return float(value)


def flag(value: object) -> bool:
    # Only true/false (YAML's yes/no included): "0" or "off" typed as a string is a mistake, not a choice.
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {shown(value)}")
    return value


def host_name(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value
        or not re.fullmatch(r"[A-Za-z0-9.:%-]+", value)
        or value.startswith(("-", "."))
    ):
        raise ValueError(
            f"expected an IP address or host name such as 127.0.0.1, 0.0.0.0 or ::, got {shown(value)}"
        )
    return value


def columns_or_auto(value: object) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected auto or an integer >= 1, got {value!r}")
    return value


def optional_integer(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"expected an integer or null, got {shown(value)}")
    return value


def retention_count(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(
            "expected null (keep every dump file), 0 (remove an epoch's files once logged) or the number of "
            f"logged epochs per run whose files are kept, got {value!r}"
        )
    return value


def path_text(value: object, wanted: str) -> str:
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected {wanted}, got {shown(value)}")
    return text


def resolve_under(base: Path, text: str) -> Path:
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        raise ValueError(
            f"expected a path whose ~ can be expanded (no home directory known), got {shown(text)}"
        ) from None
    # Joined, not resolved: resolving would follow symlinks and change what a later `..` refers to.
    return path if path.is_absolute() else base / path


def base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, Mapping) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def check_logdir_run(text: str) -> None:
    """`{run}` in a logdir: at most once, as a whole path segment, never in a URL's scheme or host."""
    count = text.count("{run}")
    if count == 0:
        return
    if count > 1:
        raise ValueError(f"expected '{{run}}' at most once, got {shown(text)}")
    scheme = URL_SCHEME.match(text)
    path = text[scheme.end() :] if scheme else text
    if scheme:
        host, slash, path = path.partition("/")
        if "{run}" in host or not slash:
            raise ValueError(f"expected '{{run}}' in the path of the URL, not its host, got {shown(text)}")
    if "{run}" not in path.split("/"):
        raise ValueError(
            f"expected '{{run}}' as a whole path segment such as '/runs/{{run}}/tb', got {shown(text)}"
        )


def keyless_pattern(value: object, **kind: bool) -> str:
    """layout.check_pattern, its message without the key: the error's location already names the key."""
    try:
        return check_pattern(value, key="", **kind)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from None
