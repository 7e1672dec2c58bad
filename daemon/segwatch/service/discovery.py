"""What is under the dump root: every file with the keys the patterns give it, and the epochs they make up.

One walk for every caller: `once` and `relog` group the whole tree, the daemon's rescans hand each keyed file to
readiness, `explain` shows both the files and the epochs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from segwatch.intake.coverage import Coverage
from segwatch.intake.layout import Artifact, ArtifactKey, DumpLayout, Pending
from segwatch.intake.scan import scan_tree

if TYPE_CHECKING:
    from segwatch.plan import RunPlan

__all__ = ["Keyed", "discover", "fixed_relative", "group", "scan"]

# A file under the root (relative, `/`-separated) and the keys it stands for: none when no pattern matches it.
Keyed = tuple[str, list[ArtifactKey]]


def scan(root: Path, layout: DumpLayout, coverage: Coverage | None = None) -> Iterator[Keyed]:
    """Each file under `root` with its keys; `coverage`, if given, counts the dump files that match no pattern."""
    for relative in scan_tree(root):
        keys = layout.keys(relative)
        if coverage is not None:
            coverage.note(relative, matched=bool(keys))
        yield relative, keys


def group(plan: RunPlan, scanned: Iterable[Keyed]) -> tuple[list[Artifact], list[Pending]]:
    """Every complete artifact among the scanned files in (run, epoch) order, and the epochs missing files."""
    keyed = [(key, str(plan.root / relative)) for relative, keys in scanned for key in keys]
    return plan.layout.group(keyed, plan.required_roles, fixed_files=plan.fixed_files)


def discover(plan: RunPlan, coverage: Coverage | None = None) -> tuple[list[Artifact], list[Pending]]:
    """Every complete artifact under the root in (run, epoch) order, and the epochs still missing files."""
    return group(plan, scan(plan.root, plan.layout, coverage))


def fixed_relative(plan: RunPlan) -> set[str]:
    """The fixed files that lie under the root, relative to it: they are read, though no pattern matches them."""
    root = os.path.abspath(plan.root)
    return {
        os.path.relpath(os.path.abspath(path), root)
        for path in plan.fixed_files.values()
        if os.path.abspath(path).startswith(os.path.join(root, ""))
    }
