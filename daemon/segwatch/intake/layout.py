"""Dump layout: dump paths -> ArtifactKey through the configured patterns, and grouping keys into complete
artifacts. Pure.

A layout is one or more patterns, each naming where a kind of file sits under the root:

- the shorthand `watch.pattern` (`{run}/epoch_{epoch}/{role}.npy`), whose `{role}` says which array a file is;
- per-role patterns (`watch.roles.pred: "{run}/preds/pred_e{epoch}.npy"`), or a fixed file shared by every
  epoch (`watch.roles.gt: val/gt.npy`, a path without placeholders);
- an optional trigger (`watch.trigger: "{run}/checkpoints/ckpt-{epoch}.index"`): a file whose appearance
  declares the epoch written. It is required for completeness but never read.

`.npz` archives hold several arrays: `"{run}/epoch_{epoch}.npz:gt"` names the member `gt` (an archive pattern
without `:member` reads the member named after the role). What one pattern may hold, and the expression it
compiles to, is patterns.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from segwatch.intake.paths import hidden_segment
from segwatch.intake.patterns import (
    ARCHIVE_SUFFIX,
    DEFAULT_PATTERN,
    ROLES,
    STEP_FROM,
    TRIGGER,
    Source,
    check_pattern,
    compile_template,
    mismatch,
    numbers_in_range,
    placeholders,
    split_member,
)
from segwatch.units import run_label

__all__ = [
    "ARCHIVE_SUFFIX",
    "DEFAULT_PATTERN",
    "ROLES",
    "TRIGGER",
    "Artifact",
    "ArtifactKey",
    "DumpLayout",
    "Match",
    "Pending",
    "check_pattern",
    "group_artifacts",
]


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
        return f"{run_label(self.run)}@{self.epoch}"

    def paths(self) -> list[str]:
        return [path for role in sorted(self.files) for path in self.files[role]]


@dataclass(frozen=True)
class Pending:
    """An epoch seen on disk that still lacks files; `missing` says which roles."""

    run: str
    epoch: int
    missing: tuple[str, ...]


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
            if not placeholders(text):
                self.fixed[role] = template
            else:
                self.sources.append(
                    Source(f"watch.roles.{role}", role, template, member, compile_template(template))
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
                    regex = compile_template(template)
                    self.sources.append(Source("watch.pattern", role, template, self.members[role], regex))
            else:
                for role in self.shorthand_roles:
                    if member is not None:
                        self.members[role] = member.replace("{role}", role)
                self.sources.append(
                    Source("watch.pattern", None, template, member, compile_template(template))
                )
        self.trigger: Source | None = None
        if trigger is not None:
            check_pattern(trigger, key="watch.trigger", trigger=True)
            self.trigger = Source("watch.trigger", TRIGGER, trigger, None, compile_template(trigger))
            self.sources.append(self.trigger)
        self._check_together()

    def _check_together(self) -> None:
        """Patterns that each match files but whose files could never form one epoch are an error too."""
        for source in self.sources:
            names = placeholders(source.template)
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
        if hidden_segment(PurePosixPath(relative_path).parts) is not None:
            return []
        found: list[Match] = []
        for source in self.sources:
            match = source.regex.fullmatch(relative_path)
            if match is None:
                continue
            groups = match.groupdict()
            if not numbers_in_range(relative_path, match):
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
        hidden = hidden_segment(parts)
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
            reasons.append(f"{source.key} {source.template!r}: {mismatch(source.template, relative_path)}")
        return reasons


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
