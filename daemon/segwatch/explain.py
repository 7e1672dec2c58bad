"""`segwatch explain`: what the configured patterns make of the files under the root, and where each epoch
stands. For people debugging a pattern: it reads file names, headers and the ledger, and writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segwatch.errors import ArtifactError, NotReadyError
from segwatch.fingerprints import set_aside_fingerprint
from segwatch.intake.files import check_dump_file, root_for
from segwatch.intake.layout import TRIGGER, Artifact, ArtifactKey, DumpLayout, Pending
from segwatch.output.ledger import Ledger, open_ledger
from segwatch.plan import RunPlan, build_plan
from segwatch.service.discovery import Keyed, group, scan
from segwatch.service.processor import artifact_fingerprint
from segwatch.units import run_label

if TYPE_CHECKING:
    from segwatch.config import Config


@dataclass(frozen=True)
class PathReport:
    """What one path is: the keys it stands for, or why it stands for none."""

    shown: str
    keys: tuple[ArtifactKey, ...]
    lines: tuple[str, ...]


def explain(config: Config, paths: Sequence[str] = (), *, cwd: Path | None = None) -> list[str]:
    """The report as lines: each path (every file under the root when none is given), then each epoch."""
    plan = build_plan(config)
    layout = plan.layout
    root = Path(config.watch.root)
    scanned = list(scan(root, layout)) if root.is_dir() else []
    lines = [f"root {root}: patterns " + "; ".join(f"{s.key} {s.template!r}" for s in layout.sources)]
    for role, path in sorted(plan.fixed_files.items()):
        state = "present" if os.path.isfile(path) else "MISSING"
        lines.append(f"fixed {role}: {path} ({state}, shared by every epoch)")
    if paths:
        reports = [describe_path(plan, layout, root, path, cwd=cwd) for path in paths]
        for report in reports:
            lines.append(f"{report.shown}: {report.lines[0]}")
            lines.extend(f"    {line}" for line in report.lines[1:])
    else:
        reports = []
        lines.extend(_unmatched_files(plan, layout, root, scanned))

    complete, pending = group(plan, scanned)
    wanted = {(key.run, key.epoch) for report in reports for key in report.keys} if paths else None
    statuses = epoch_statuses(config, plan, complete, pending)
    shown = [
        (label, text)
        for (run, epoch), (label, text) in statuses.items()
        if wanted is None or (run, epoch) in wanted
    ]
    lines.append(f"epochs ({len(shown)}):" if shown else "epochs: none found under the root")
    lines.extend(f"  {label}: {text}" for label, text in shown)
    return lines


def _unmatched_files(plan: RunPlan, layout: DumpLayout, root: Path, scanned: list[Keyed]) -> list[str]:
    """The files under the root that no pattern matches, sorted and grouped by directory, with the reasons.

    Matching files are the epoch table's business, and directories are never dump files themselves."""
    fixed = {os.path.abspath(path) for path in plan.fixed_files.values()}
    by_directory: dict[str, list[PathReport]] = {}
    for relative, keys in sorted(scanned):
        absolute = root / relative
        if keys or absolute.is_dir() or os.path.abspath(absolute) in fixed:
            continue
        directory, _, name = relative.rpartition("/")
        report = describe_path(plan, layout, root, str(absolute))
        by_directory.setdefault(directory, []).append(PathReport(name, report.keys, report.lines))
    count = sum(len(reports) for reports in by_directory.values())
    if not count:
        return ["files matching no pattern: none"]
    lines = [f"files matching no pattern ({count}):"]
    for directory, reports in sorted(by_directory.items()):
        lines.append(f"  {directory or '.'}/")
        for report in reports:
            lines.append(f"    {report.shown}: {'; '.join(report.lines[1:]) or report.lines[0]}")
    return lines


def describe_path(
    plan: RunPlan, layout: DumpLayout, root: Path, given: str, *, cwd: Path | None = None
) -> PathReport:
    absolute = Path(os.path.abspath(Path(cwd or Path.cwd()) / given))
    relative = _relative_to(absolute, root)
    if relative is None and not Path(given).is_absolute() and not (Path(cwd or Path.cwd()) / given).exists():
        # A path written as the pattern sees it: relative to the root.
        absolute, relative = root / given, given
    fixed = {os.path.abspath(path): role for role, path in plan.fixed_files.items()}
    if str(absolute) in fixed:
        return PathReport(given, (), (f"the fixed {fixed[str(absolute)]}, shared by every epoch",))
    if relative is None:
        return PathReport(given, (), (f"matches nothing: outside watch.root {root}, never read",))
    matches = layout.matches(relative)
    if not matches:
        reasons = layout.why_not(relative)
        return PathReport(given, (), ("matches nothing", *reasons))
    keys = []
    parts = []
    for match in matches:
        key = match.key
        keys.append(key)
        what = (
            "the trigger"
            if key.role == TRIGGER
            else key.role + ("" if key.item is None else f" item {key.item}")
        )
        if match.member is not None:
            what += f" (archive member {match.member!r})"
        numbers = ", ".join(
            f"{name} {value}"
            for name, value in (("epoch", match.epoch), ("step", match.step))
            if value is not None
        )
        note = ""
        if key.role not in plan.required_roles and key.role != TRIGGER:
            note = f"; not read: {key.role} is not shown (compose.panels)"
        elif key.role in plan.fixed_files:
            note = f"; not read: the fixed {key.role} is used instead"
        parts.append(
            f"{what} of run {key.run or '. (unnamed)'}, {numbers} (TensorBoard step {key.epoch}) "
            f"via {match.source.key}{note}"
        )
    return PathReport(given, tuple(keys), ("; ".join(parts),))


def epoch_statuses(
    config: Config, plan: RunPlan, complete: Iterable[Artifact], pending: Iterable[Pending]
) -> dict[tuple[str, int], tuple[str, str]]:
    """Per (run, epoch) seen on disk: its label and where it stands (done, set aside, ready, waiting)."""
    layout = plan.layout
    ledgers: dict[str, Ledger] = {}

    def ledger_of(run: str) -> Ledger:
        logdir = config.tensorboard.logdir
        if logdir not in ledgers:
            ledgers[logdir] = open_ledger(logdir)
        return ledgers[logdir]

    found: dict[tuple[str, int], tuple[str, str]] = {}
    for artifact in complete:
        found[(artifact.run, artifact.epoch)] = (
            artifact.label,
            _complete_status(config, plan, artifact, ledger_of(artifact.run)),
        )
    for waiting in pending:
        label = f"{run_label(waiting.run)}@{waiting.epoch}"
        ledger = ledger_of(waiting.run)
        if ledger.is_done(waiting.run, waiting.epoch):
            found[(waiting.run, waiting.epoch)] = (label, "done (in the ledger)")
            continue
        missing = [
            f"the trigger ({layout.trigger.template})" if role == TRIGGER and layout.trigger else role
            for role in waiting.missing
        ]
        found[(waiting.run, waiting.epoch)] = (label, "waiting for " + ", ".join(missing))
    return dict(sorted(found.items()))


def _complete_status(config: Config, plan: RunPlan, artifact: Artifact, ledger: Ledger) -> str:
    run, epoch = artifact.run, artifact.epoch
    if ledger.is_done(run, epoch):
        return "done (in the ledger)"
    record = ledger.runs.get(run)
    if record is not None and epoch in record.set_aside:
        entry = record.set_aside[epoch]
        now = set_aside_fingerprint(artifact_fingerprint(artifact), plan.fingerprint)
        if entry.fingerprint == now:
            return f"set aside (until its files or the config change): {entry.reason}"
        # Files or config changed since: the old reason may no longer hold, and the epoch is tried again.
        earlier = f" (set aside earlier for: {entry.reason}; its files or the config changed since)"
        return _fresh_status(config, plan, artifact, ledger) + earlier
    return _fresh_status(config, plan, artifact, ledger)


def _fresh_status(config: Config, plan: RunPlan, artifact: Artifact, ledger: Ledger) -> str:
    """Where an epoch stands that is neither done nor set aside under the current files and config."""
    run, epoch = artifact.run, artifact.epoch
    last = ledger.last_epoch(run)
    if last is not None and epoch < last:
        return f"complete but late: epoch {last} is already logged, so this one is skipped"
    for role, paths in sorted(artifact.files.items()):
        for path in paths:
            try:
                root = root_for(path, plan.root, plan.fixed_paths)
                check_dump_file(Path(path), artifact.members.get(role), caps=plan.caps, root=root)
            except NotReadyError as exc:
                return f"waiting: {exc}"
            except ArtifactError as exc:
                return f"complete, but will be set aside: {exc}"
    how = (
        "its trigger is present" if config.watch.trigger else f"once unchanged for {config.watch.settle:g} s"
    )
    return f"complete: logged next ({how})"


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        relative = path.relative_to(Path(os.path.abspath(root)))
    except ValueError:
        return None
    text = relative.as_posix()
    return None if text in ("", ".") else text
