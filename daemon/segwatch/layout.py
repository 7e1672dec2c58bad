"""Dump layout: the path pattern <-> ArtifactKey, and grouping keys into complete artifacts. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

ROLES = ("gt", "pred", "image")
DEFAULT_PATTERN = "{run}/epoch_{epoch}/{role}.npy"

# A run name is one path segment that is not hidden: producers stage work in dot-directories, and a name that
# starts with a dot could never be `.` or `..`, so it cannot lead a writer out of the logdir.
_RUN = r"(?P<run>[^/.][^/]*)"
_EPOCH = r"(?P<epoch>\d+)"
# `gt_3.npy` is item 3 of a batch whose items have different shapes (one file each, as `save_epoch` writes them).
_ROLE = r"(?P<role>{roles})(?:_(?P<item>\d+))?".format(roles="|".join(ROLES))
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, order=True)
class ArtifactKey:
    """What one dump file is: which run, which epoch, which role (and which item of a split batch)."""

    run: str
    epoch: int
    role: str
    item: int | None = None


@dataclass(frozen=True)
class Artifact:
    """One epoch of one run whose required files are all present.

    `files[role]` lists the role's files in item order: one batch file, or one file per item.
    """

    run: str
    epoch: int
    files: Mapping[str, tuple[str, ...]] = field(compare=False)

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


class DumpLayout:
    """Translates between relative dump paths and keys, for one configured pattern.

    `{run}` followed by `/` at the start of the pattern is optional, so a flat `<root>/epoch_<N>/...` matches
    as the unnamed run "" — the single-run case needs no pattern of its own.
    """

    def __init__(self, pattern: str = DEFAULT_PATTERN) -> None:
        names = _PLACEHOLDER.findall(pattern)
        if "epoch" not in names or "role" not in names:
            raise ValueError(f"pattern {pattern!r} must contain {{epoch}} and {{role}}")
        unknown = sorted(set(names) - {"run", "epoch", "role"})
        if unknown:
            raise ValueError(f"pattern {pattern!r} has unknown placeholder(s) {unknown}")
        if any(names.count(name) > 1 for name in names):
            raise ValueError(f"pattern {pattern!r} repeats a placeholder")
        self.pattern = pattern
        self._regex = re.compile(self._to_regex(pattern))

    @staticmethod
    def _to_regex(pattern: str) -> str:
        optional_run = pattern.startswith("{run}/")
        body = pattern[len("{run}/") :] if optional_run else pattern
        parts: list[str] = []
        last = 0
        for match in _PLACEHOLDER.finditer(body):
            parts.append(re.escape(body[last : match.start()]))
            parts.append({"run": _RUN, "epoch": _EPOCH, "role": _ROLE}[match.group(1)])
            last = match.end()
        parts.append(re.escape(body[last:]))
        prefix = f"(?:{_RUN}/)?" if optional_run else ""
        return prefix + "".join(parts)

    def parse(self, relative_path: str) -> ArtifactKey | None:
        """The key a path (relative to the root, `/`-separated) stands for, or None."""
        if any(part.startswith(".") for part in PurePosixPath(relative_path).parts):
            return None
        match = self._regex.fullmatch(relative_path)
        if match is None:
            return None
        item = match.group("item")
        return ArtifactKey(
            run=match.groupdict().get("run") or "",
            epoch=int(match.group("epoch")),
            role=match.group("role"),
            item=None if item is None else int(item),
        )

    def format(self, key: ArtifactKey) -> str:
        """The relative path of a key: `parse(format(key)) == key`."""
        role = key.role if key.item is None else f"{key.role}_{key.item}"
        pattern = self.pattern
        if not key.run and pattern.startswith("{run}/"):
            pattern = pattern[len("{run}/") :]
        return pattern.format(run=key.run, epoch=key.epoch, role=role)


def group_artifacts(
    keyed_paths: Iterable[tuple[ArtifactKey, str]],
    required_roles: Sequence[str],
    *,
    fixed_files: Mapping[str, str] | None = None,
) -> tuple[list[Artifact], list[Pending]]:
    """Group files into artifacts, complete ones in (run, epoch) order, and the epochs still waiting.

    `fixed_files` supplies roles shared by every epoch (a fixed validation ground truth); such a role is never
    waited for. A role split into items is complete when it has the same item numbers as every other split role.
    Files of roles not required (an image nobody shows) are ignored.
    """
    fixed = dict(fixed_files or {})
    by_epoch: dict[tuple[str, int], dict[str, dict[int | None, str]]] = {}
    for key, path in keyed_paths:
        if key.role in required_roles and key.role not in fixed:
            by_epoch.setdefault((key.run, key.epoch), {}).setdefault(key.role, {})[key.item] = path

    complete: list[Artifact] = []
    pending: list[Pending] = []
    for (run, epoch), roles in sorted(by_epoch.items()):
        missing = tuple(role for role in required_roles if role not in roles and role not in fixed)
        item_sets = {frozenset(items) for items in roles.values()}
        if missing or len(item_sets) > 1 or _mixes_batch_and_items(roles):
            pending.append(Pending(run, epoch, missing or _item_gap(roles)))
            continue
        files = {
            role: tuple(items[i] for i in sorted(items, key=_item_order)) for role, items in roles.items()
        }
        files.update({role: (path,) for role, path in fixed.items() if role in required_roles})
        complete.append(Artifact(run, epoch, files))
    return complete, pending


def _item_order(item: int | None) -> int:
    return -1 if item is None else item


def _mixes_batch_and_items(roles: Mapping[str, Mapping[int | None, str]]) -> bool:
    return any(None in items and len(items) > 1 for items in roles.values())


def _item_gap(roles: Mapping[str, Mapping[int | None, str]]) -> tuple[str, ...]:
    everything = set().union(*(set(items) for items in roles.values()))
    return tuple(
        role if item is None else f"{role}_{item}"
        for role, items in sorted(roles.items())
        for item in sorted(everything - set(items), key=_item_order)
    )
