"""Path patterns: what a configured pattern may hold, the regular expression it compiles to, and why a path
does not match one. Pure.

A pattern names where a kind of dump file sits under the root (`{run}/epoch_{epoch}/{role}.npy`); layout.py
puts the configured patterns together into a DumpLayout.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from segwatch.intake.paths import is_hidden

log = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_SUFFIX",
    "ARRAY_SUFFIXES",
    "DEFAULT_PATTERN",
    "MAX_STEP",
    "ROLES",
    "STEP_FROM",
    "TRIGGER",
    "Source",
    "StepFrom",
    "check_pattern",
    "compile_template",
    "mismatch",
    "numbers_in_range",
    "placeholders",
    "split_member",
]

ROLES = ("gt", "pred", "image")
TRIGGER = "trigger"
DEFAULT_PATTERN = "{run}/epoch_{epoch}/{role}.npy"
# Which number of a path orders epochs and is their TensorBoard step (watch.step_from).
StepFrom = Literal["epoch", "step"]
STEP_FROM: tuple[str, ...] = get_args(StepFrom)
ARRAY_SUFFIXES = (".npy", ".npz")
ARCHIVE_SUFFIX = ".npz"

# A run name is one path segment that is not hidden: producers stage work in dot-directories, and a name that
# starts with a dot could never be `.` or `..`, so it cannot lead a writer out of the logdir.
_RUN = r"(?P<run>[^/.][^/]*)"
_EPOCH = r"(?P<epoch>\d+)"
_STEP = r"(?P<step>\d+)"
# `gt_3.npy` is item 3 of a batch whose items have different shapes (one file each, as `save_epoch` writes them).
_ROLE = r"(?P<role>{roles})(?:_(?P<item>\d+))?".format(roles="|".join(ROLES))
# The epoch is a TensorBoard step, an int64: a larger number in a path is refused before any arithmetic.
MAX_STEP = 2**63 - 1
# Paths already refused for their numbers, so a rescan does not repeat the line (bounded: a flood of such
# names costs a repeated line, not memory).
_REFUSED: set[str] = set()
_REFUSED_LIMIT = 10_000
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TOKEN = re.compile(r"\{[^{}]*\}?|\}")
_GROUPS = {"run": _RUN, "epoch": _EPOCH, "step": _STEP, "role": _ROLE}
# The same, without group names: one segment of a pattern on its own, for explaining a mismatch.
_PLAIN = {
    "run": r"[^/.][^/]*",
    "epoch": r"\d+",
    "step": r"\d+",
    "role": r"(?:{})(?:_\d+)?".format("|".join(ROLES)),
}


@dataclass(frozen=True)
class Source:
    """One configured pattern: the config key that set it, the role its files play (None: from `{role}`),
    the path template and the archive member to read."""

    key: str
    role: str | None
    template: str
    member: str | None
    regex: re.Pattern[str]


def split_member(text: str) -> tuple[str, str | None]:
    """`"{run}/e{epoch}.npz:gt"` -> (`"{run}/e{epoch}.npz"`, `"gt"`); a pattern without a member -> (text, None)."""
    head, colon, member = text.rpartition(":")
    if colon and head.endswith(ARCHIVE_SUFFIX):
        return head, member
    return text, None


def check_pattern(text: object, *, key: str, shorthand: bool = False, trigger: bool = False) -> str:
    """Refuse a pattern that could never match a dump file; the message starts with the config key.

    A role pattern without placeholders is a fixed file (it may be absolute); any other pattern is relative to
    the root and needs `{epoch}` or `{step}`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{key}: expected a path pattern such as {DEFAULT_PATTERN!r}, got {text!r}")
    template, member = split_member(text)
    allowed = ("{run}", "{epoch}", "{step}", "{role}") if shorthand else ("{run}", "{epoch}", "{step}")
    stray = [token for token in _TOKEN.findall(text) if token not in allowed]
    if stray:
        raise ValueError(
            f"{key}: expected only the placeholders {', '.join(allowed)}, got {stray[0]!r} in {text!r}"
        )
    names = placeholders(text)
    if any(names.count(name) > 1 for name in names):
        raise ValueError(f"{key}: expected each placeholder at most once, got {text!r}")
    if member is not None and (not member or "/" in member or (member != "{role}" and "{" in member)):
        raise ValueError(
            f"{key}: expected an archive member name after ':' (e.g. 'file.npz:gt'), got {text!r}"
        )
    if ":" in template and member is None and not template.endswith(ARCHIVE_SUFFIX):
        raise ValueError(f"{key}: only .npz archives have members ('file.npz:name'), got {text!r}")
    if re.search(r"\}\{", template):
        raise ValueError(f"{key}: placeholders must be separated by literal text, got {text!r}")
    if not trigger and not template.endswith(ARRAY_SUFFIXES):
        raise ValueError(
            f"{key}: expected a path ending in .npy or .npz (optionally '.npz:member'), got {text!r}"
        )
    fixed = not names
    if fixed and not shorthand and not trigger:
        return text
    if shorthand and ("role" not in names or ("epoch" not in names and "step" not in names)):
        raise ValueError(f"{key}: expected a pattern containing {{epoch}} and {{role}}, got {text!r}")
    if "epoch" not in names and "step" not in names:
        raise ValueError(f"{key}: expected {{epoch}} or {{step}} in the pattern, got {text!r}")
    if template.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", template):
        raise ValueError(f"{key}: expected a pattern relative to watch.root, got {text!r}")
    # Hidden segments are where producers stage unfinished epochs; the watcher never matches inside them.
    if any(not segment or is_hidden(segment) for segment in template.split("/")):
        raise ValueError(
            f"{key}: expected a pattern without empty, '..' or hidden ('.'-prefixed) segments, got {text!r}"
        )
    return text


def placeholders(text: str) -> list[str]:
    """The names of the placeholders in a pattern, in order: `"{run}/e{epoch}.npy"` -> ["run", "epoch"]."""
    return _PLACEHOLDER.findall(text)


def compile_template(template: str) -> re.Pattern[str]:
    """The regular expression a path template matches; a leading `{run}/` is optional, so a flat
    `<root>/epoch_<N>/...` matches as the unnamed run ""."""
    optional_run = template.startswith("{run}/")
    body = template[len("{run}/") :] if optional_run else template
    prefix = f"(?:{_RUN}/)?" if optional_run else ""
    return re.compile(prefix + _segment_regex(body, _GROUPS))


def _segment_regex(text: str, groups: Mapping[str, str]) -> str:
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[last : match.start()]))
        parts.append(groups[match.group(1)])
        last = match.end()
    parts.append(re.escape(text[last:]))
    return "".join(parts)


def mismatch(template: str, relative_path: str) -> str:
    """The first place where a path departs from a template."""
    path_parts = relative_path.split("/")
    variants = [template.split("/")]
    if template.startswith("{run}/"):
        variants.append(template.split("/")[1:])
    fitting = [v for v in variants if len(v) == len(path_parts)]
    if not fitting:
        counts = " or ".join(str(len(v)) for v in reversed(variants))
        return f"has {len(path_parts)} path segment(s), the pattern {counts}"
    pattern_parts = fitting[0]
    for index, (want, have) in enumerate(zip(pattern_parts, path_parts, strict=True)):
        if not re.fullmatch(_segment_regex(want, _PLAIN), have):
            return f"segment {index + 1} {have!r} does not match {want!r}" + _hint(want, have)
    return "does not match"


def _hint(want: str, have: str) -> str:
    if "{epoch}" in want or "{step}" in want:
        literal = _PLACEHOLDER.split(want)
        if all(part in have for part in literal[::2] if part):
            return " ({epoch} and {step} are digits only)"
    if "{run}" in want and is_hidden(have):
        return " (a run name cannot start with '.')"
    return ""


def numbers_in_range(relative_path: str, match: re.Match[str]) -> bool:
    """Whether the path's epoch, step and item numbers fit an int64; said once per offending path segment
    (a directory `epoch_<huge>` is one line, not one per file) when they do not."""
    groups = match.groupdict()
    for name in ("epoch", "step", "item"):
        digits = groups.get(name)
        # Length first: int() of a number past 4,300 digits raises, and no int64 has more than 19.
        if digits is None or (len(digits.lstrip("0")) <= 19 and int(digits) <= MAX_STEP):
            continue
        segment_end = relative_path.find("/", match.end(name))
        where = relative_path if segment_end < 0 else relative_path[:segment_end]
        if where not in _REFUSED:
            if len(_REFUSED) >= _REFUSED_LIMIT:
                _REFUSED.clear()
            _REFUSED.add(where)
            shown = digits if len(digits) <= 40 else f"{digits[:20]}... ({len(digits)} digits)"
            log.warning(
                "%s: %s %s is above %d (a TensorBoard step is an int64); not read",
                where[:300],
                name,
                shown,
                MAX_STEP,
            )
        return False
    return True
