"""Dump layout: path patterns <-> ArtifactKey, and grouping keys into complete artifacts. Pure.

A layout is one or more patterns, each naming where a kind of file sits under the root:

- the shorthand `watch.pattern` (`{run}/epoch_{epoch}/{role}.npy`), whose `{role}` says which array a file is;
- per-role patterns (`watch.roles.pred: "{run}/preds/pred_e{epoch}.npy"`), or a fixed file shared by every
  epoch (`watch.roles.gt: val/gt.npy`, a path without placeholders);
- an optional trigger (`watch.trigger: "{run}/checkpoints/ckpt-{epoch}.index"`): a file whose appearance
  declares the epoch written. It is required for completeness but never read.

`.npz` archives hold several arrays: `"{run}/epoch_{epoch}.npz:gt"` names the member `gt` (an archive pattern
without `:member` reads the member named after the role).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

log = logging.getLogger(__name__)

ROLES = ("gt", "pred", "image")
TRIGGER = "trigger"
DEFAULT_PATTERN = "{run}/epoch_{epoch}/{role}.npy"
STEP_FROM = ("epoch", "step")
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


@dataclass(frozen=True, order=True)
class ArtifactKey:
    """What one dump file is: which run, which epoch, which role (and which item of a split batch).

    `epoch` orders a run's epochs and is their TensorBoard step: the path's `{epoch}`, or its `{step}` under
    `watch.step_from: step`. `other` keeps the path's other number, if it has one, so the path can be
    formatted back from the key.
    """

    run: str
    epoch: int
    role: str
    item: int | None = None
    other: int | None = None


@dataclass(frozen=True)
class Artifact:
    """One epoch of one run whose required files are all present.

    `files[role]` lists the role's files in item order: one batch file, or one file per item. `members[role]`
    is the member to read when the role's file is an `.npz` archive.
    """

    run: str
    epoch: int
    files: Mapping[str, tuple[str, ...]] = field(compare=False)
    members: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return f"{self.run or '.'}@{self.epoch}"

    def paths(self) -> list[str]:
        return [path for role in sorted(self.files) for path in self.files[role]]


@dataclass(frozen=True)
class Pending:
    """An epoch seen on disk that still lacks files; `missing` says which roles."""

    run: str
    epoch: int
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    """One configured pattern: the config key that set it, the role its files play (None: from `{role}`),
    the path template and the archive member to read."""

    key: str
    role: str | None
    template: str
    member: str | None
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Match:
    """How a path matched a pattern: the key it stands for and the numbers read from it."""

    source: Source
    key: ArtifactKey
    epoch: int | None
    step: int | None

    @property
    def member(self) -> str | None:
        return self.source.member.replace("{role}", self.key.role) if self.source.member else None


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
    names = _PLACEHOLDER.findall(text)
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
    if any(not segment or segment.startswith(".") for segment in template.split("/")):
        raise ValueError(
            f"{key}: expected a pattern without empty, '..' or hidden ('.'-prefixed) segments, got {text!r}"
        )
    return text


def _regex(template: str) -> str:
    """A leading `{run}/` is optional, so a flat `<root>/epoch_<N>/...` matches as the unnamed run ""."""
    optional_run = template.startswith("{run}/")
    body = template[len("{run}/") :] if optional_run else template
    prefix = f"(?:{_RUN}/)?" if optional_run else ""
    return prefix + _segment_regex(body, _GROUPS)


def _segment_regex(text: str, groups: Mapping[str, str]) -> str:
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[last : match.start()]))
        parts.append(groups[match.group(1)])
        last = match.end()
    parts.append(re.escape(text[last:]))
    return "".join(parts)


class DumpLayout:
    """Translates between relative dump paths and keys, for the configured patterns.

    `roles` maps a role to its own pattern or fixed file; roles it leaves out use `pattern`. `step_from` says
    which number orders epochs and becomes the TensorBoard step: every per-epoch pattern must hold it.
    """

    def __init__(
        self,
        pattern: str = DEFAULT_PATTERN,
        *,
        roles: Mapping[str, str] | None = None,
        trigger: str | None = None,
        step_from: str = "epoch",
        required_roles: Sequence[str] = ROLES,
    ) -> None:
        if step_from not in STEP_FROM:
            raise ValueError(f"watch.step_from: expected one of {', '.join(STEP_FROM)}, got {step_from!r}")
        roles = dict(roles or {})
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"watch.roles: unknown role(s) {unknown}, expected some of {', '.join(ROLES)}")
        self.pattern = pattern
        self.step_from = step_from
        self.index = step_from
        self.fixed: dict[str, str] = {}
        self.members: dict[str, str] = {}
        self.sources: list[Source] = []
        for role, text in roles.items():
            check_pattern(text, key=f"watch.roles.{role}")
            template, member = split_member(text)
            if template.endswith(ARCHIVE_SUFFIX):
                self.members[role] = member or role
            if not _PLACEHOLDER.search(text):
                self.fixed[role] = template
            else:
                self.sources.append(
                    Source(f"watch.roles.{role}", role, template, member, re.compile(_regex(template)))
                )
        self.shorthand_roles = tuple(role for role in ROLES if role not in roles)
        if any(role in required_roles for role in self.shorthand_roles):
            check_pattern(pattern, key="watch.pattern", shorthand=True)
            template, member = split_member(pattern)
            if template.endswith(ARCHIVE_SUFFIX):
                member = member or "{role}"
            if member is not None and "{role}" not in template:
                # `{run}/epoch_{epoch}.npz:{role}`: one archive per epoch, a member per role.
                for role in self.shorthand_roles:
                    self.members[role] = member.replace("{role}", role)
                    regex = re.compile(_regex(template))
                    self.sources.append(Source("watch.pattern", role, template, self.members[role], regex))
            else:
                for role in self.shorthand_roles:
                    if member is not None:
                        self.members[role] = member.replace("{role}", role)
                self.sources.append(
                    Source("watch.pattern", None, template, member, re.compile(_regex(template)))
                )
        self.trigger: Source | None = None
        if trigger is not None:
            check_pattern(trigger, key="watch.trigger", trigger=True)
            self.trigger = Source("watch.trigger", TRIGGER, trigger, None, re.compile(_regex(trigger)))
            self.sources.append(self.trigger)
        self._check_together()

    def _check_together(self) -> None:
        """Patterns that each match files but whose files could never form one epoch are an error too."""
        for source in self.sources:
            names = _PLACEHOLDER.findall(source.template)
            if self.index not in names:
                raise ValueError(
                    f"{source.key}: expected {{{self.index}}} in {source.template!r}: it orders epochs and is "
                    f"their TensorBoard step (watch.step_from: {self.step_from})"
                )
        without_run = [s for s in self.sources if "{run}" not in s.template]
        nested_run = [
            s for s in self.sources if "{run}" in s.template and not s.template.startswith("{run}/")
        ]
        if without_run and nested_run:
            raise ValueError(
                f"{nested_run[0].key}: has {{run}} inside the path while {without_run[0].key} has no {{run}}: "
                "their files could never belong to the same run"
            )

    # --- paths -> keys ---------------------------------------------------------------------------------
    def matches(self, relative_path: str) -> list[Match]:
        """Every way a path (relative to the root, `/`-separated) matches the patterns; an archive can hold
        several roles."""
        if any(part.startswith(".") for part in PurePosixPath(relative_path).parts):
            return []
        found: list[Match] = []
        for source in self.sources:
            match = source.regex.fullmatch(relative_path)
            if match is None:
                continue
            groups = match.groupdict()
            if not _numbers_in_range(relative_path, match):
                continue
            epoch = None if groups.get("epoch") is None else int(groups["epoch"])
            step = None if groups.get("step") is None else int(groups["step"])
            index, other = (epoch, step) if self.index == "epoch" else (step, epoch)
            assert index is not None  # _check_together: every pattern holds the index
            if source.role is not None:
                roles: Iterable[tuple[str, int | None]] = [(source.role, None)]
            else:
                role = groups["role"]
                if role not in self.shorthand_roles:
                    continue
                item = groups.get("item")
                roles = [(role, None if item is None else int(item))]
            for role, item in roles:
                key = ArtifactKey(run=groups.get("run") or "", epoch=index, role=role, item=item, other=other)
                found.append(Match(source, key, epoch, step))
        return found

    def keys(self, relative_path: str) -> list[ArtifactKey]:
        return [match.key for match in self.matches(relative_path)]

    def parse(self, relative_path: str) -> ArtifactKey | None:
        """The key a path stands for (the first, if an archive holds several roles), or None."""
        keys = self.keys(relative_path)
        return keys[0] if keys else None

    def format(self, key: ArtifactKey) -> str:
        """The relative path of a key: `key in keys(format(key))`."""
        source = next(
            (
                s
                for s in self.sources
                if s.role == key.role or (s.role is None and key.role in self.shorthand_roles)
            ),
            None,
        )
        if source is None:
            raise ValueError(f"no pattern for role {key.role!r}")
        numbers = {self.index: key.epoch, ("step" if self.index == "epoch" else "epoch"): key.other}
        template = source.template
        if not key.run and template.startswith("{run}/"):
            template = template[len("{run}/") :]
        role = key.role if key.item is None else f"{key.role}_{key.item}"
        values = {"run": key.run, "role": role, **numbers}
        needed = set(_PLACEHOLDER.findall(template))
        if any(values.get(name) is None for name in needed):
            raise ValueError(f"key {key} lacks a value for {template!r}")
        return template.format(**{name: values[name] for name in needed})

    # --- keys -> artifacts -----------------------------------------------------------------------------
    def group(
        self,
        keyed_paths: Iterable[tuple[ArtifactKey, str]],
        required_roles: Sequence[str],
        *,
        fixed_files: Mapping[str, str] | None = None,
    ) -> tuple[list[Artifact], list[Pending]]:
        """`group_artifacts` for this layout: the trigger is waited for, and archive members are attached."""
        return group_artifacts(
            keyed_paths,
            required_roles,
            fixed_files=fixed_files,
            markers=(TRIGGER,) if self.trigger is not None else (),
            members=self.members,
        )

    # --- explaining a path that matches nothing --------------------------------------------------------
    def why_not(self, relative_path: str, required_roles: Sequence[str] = ROLES) -> list[str]:
        """Why a path matches no pattern, one reason per pattern; empty if it does match one."""
        parts = PurePosixPath(relative_path).parts
        hidden = next((part for part in parts if part.startswith(".")), None)
        if hidden is not None:
            return [
                f"inside the hidden ('.') segment {hidden!r}, where producers stage unfinished work: never read"
            ]
        reasons = []
        for source in self.sources:
            found = source.regex.fullmatch(relative_path)
            if found is not None:
                role = found.groupdict().get("role")
                if source.role is None and role not in self.shorthand_roles:
                    reasons.append(
                        f"{source.key}: matches as {role}, but watch.roles.{role} sets where {role} is"
                    )
                continue
            reasons.append(f"{source.key} {source.template!r}: {_mismatch(source.template, relative_path)}")
        return reasons


def _mismatch(template: str, relative_path: str) -> str:
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
    if "{run}" in want and have.startswith("."):
        return " (a run name cannot start with '.')"
    return ""


def group_artifacts(
    keyed_paths: Iterable[tuple[ArtifactKey, str]],
    required_roles: Sequence[str],
    *,
    fixed_files: Mapping[str, str] | None = None,
    markers: Sequence[str] = (),
    members: Mapping[str, str] | None = None,
) -> tuple[list[Artifact], list[Pending]]:
    """Group files into artifacts, complete ones in (run, epoch) order, and the epochs still waiting.

    `fixed_files` supplies roles shared by every epoch (a fixed validation ground truth); such a role is never
    waited for. A role split into items is complete when it has the same item numbers as every other split role.
    Files of roles not required (an image nobody shows) are ignored. `markers` are roles that must be present
    (a trigger file) but are not part of the artifact's files.
    """
    fixed = dict(fixed_files or {})
    wanted = (*required_roles, *markers)
    by_epoch: dict[tuple[str, int], dict[str, dict[int | None, str]]] = {}
    for key, path in keyed_paths:
        if key.role in wanted and key.role not in fixed:
            by_epoch.setdefault((key.run, key.epoch), {}).setdefault(key.role, {})[key.item] = path

    complete: list[Artifact] = []
    pending: list[Pending] = []
    for (run, epoch), found in sorted(by_epoch.items()):
        missing = tuple(role for role in wanted if role not in found and role not in fixed)
        roles = {role: items for role, items in found.items() if role not in markers}
        item_sets = {frozenset(items) for items in roles.values()}
        if missing or len(item_sets) > 1 or _mixes_batch_and_items(roles):
            pending.append(Pending(run, epoch, missing or _item_gap(roles)))
            continue
        files = {
            role: tuple(items[i] for i in sorted(items, key=_item_order)) for role, items in roles.items()
        }
        files.update({role: (path,) for role, path in fixed.items() if role in required_roles})
        used = {role: member for role, member in (members or {}).items() if role in files}
        complete.append(Artifact(run, epoch, files, used))
    return complete, pending


def _item_order(item: int | None) -> int:
    return -1 if item is None else item


def _mixes_batch_and_items(roles: Mapping[str, Mapping[int | None, str]]) -> bool:
    return any(None in items and len(items) > 1 for items in roles.values())


def _item_gap(roles: Mapping[str, Mapping[int | None, str]]) -> tuple[str, ...]:
    everything: set[int | None] = set().union(*(set(items) for items in roles.values()))
    return tuple(
        role if item is None else f"{role}_{item}"
        for role, items in sorted(roles.items())
        for item in sorted(everything - set(items), key=_item_order)
    )


def _numbers_in_range(relative_path: str, match: re.Match[str]) -> bool:
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
