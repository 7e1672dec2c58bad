"""Dump retention: removing an epoch's dump files once it is logged, so a shared volume never fills up.

Opt-in (`watch.retention`): N keeps the files of each run's last N logged epochs; 0 removes an epoch's files
as soon as its summaries are committed. What may be removed is narrow on purpose:

- only files the layout matched for a role segwatch reads (gt, pred, image when a panel shows it), of an epoch
  the ledger records as logged: never a set-aside epoch (its files are the evidence), never a trigger file (a
  checkpoint), never a fixed file (the shared ground truth);
- only regular files whose directory lies inside the root (a symlinked directory never leads out of it);
- only files unchanged since they were logged and for `watch.settle`: nothing still being written;
- only after the ledger commit. A crash between the commit and the removal leaves files of logged epochs
  behind; the start-up sweep finds them by the same rules and finishes the removal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from segwatch.intake.layout import Artifact, DumpLayout, Match
from segwatch.intake.scan import scan_tree
from segwatch.output.ledger import Ledger
from segwatch.units import run_label

if TYPE_CHECKING:
    from segwatch.config.model import Config
    from segwatch.plan import RunPlan

log = logging.getLogger(__name__)

# (run, epoch, files removed, bytes removed): for metrics.
OnRemoved = Callable[[str, int, int, int], None]


class Committing(Protocol):
    """What retention hooks into (the processor): its plan, its ledger, and the callback it makes after each
    commit."""

    plan: RunPlan
    ledger: Ledger
    on_commit: Callable[[Artifact], None] | None


@dataclass(frozen=True)
class Seen:
    """A dump file as it was when its epoch was logged: a file replaced or rewritten since is not removed."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    # Whether the file's directory exists for this epoch alone (`epoch_3/`), to be removed once empty.
    epoch_directory: bool


class Retention:
    """Which logged files are still on disk, per run and epoch, and the removal of those out of the window."""

    def __init__(
        self,
        *,
        keep: int,
        root: Path,
        layout: DumpLayout,
        roles: Iterable[str],
        fixed_files: Iterable[str],
        ledger: Ledger,
        settle: float,
        on_removed: OnRemoved | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keep = keep
        self.root = os.path.realpath(root)
        self.layout = layout
        self.roles = frozenset(roles)
        self.fixed = frozenset(os.path.realpath(path) for path in fixed_files)
        self.ledger = ledger
        self.settle = settle
        self.on_removed = on_removed
        self.clock = clock
        self.files: dict[str, dict[int, dict[str, Seen]]] = {}
        self.removed_files = 0
        self.removed_bytes = 0

    # --- what is on disk ---------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Find the files of logged epochs still under the root (a restart, a crash after a commit), then
        remove those out of the window."""
        for relative in scan_tree(Path(self.root)):
            for match in self.layout.matches(relative):
                key = match.key
                if key.role in self.roles and self.ledger.is_done(key.run, key.epoch):
                    self._remember(key.run, key.epoch, os.path.join(self.root, relative), match)
        for run in list(self.files):
            self._enforce(run)

    def after_commit(self, artifact: Artifact) -> None:
        """The processor's hook: `artifact` is committed; its files may now go, and older epochs' files too."""
        for path in artifact.paths():
            match = self._match(path)
            if match is not None and match.key.role in self.roles:
                self._remember(artifact.run, artifact.epoch, path, match)
        self._enforce(artifact.run)

    def _match(self, path: str) -> Match | None:
        relative = os.path.relpath(os.path.realpath(os.path.dirname(path)), self.root)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            return None
        relative = os.path.normpath(os.path.join(relative, os.path.basename(path))).replace(os.sep, "/")
        matches = self.layout.matches(relative)
        return matches[0] if matches else None

    def _remember(self, run: str, epoch: int, path: str, match: Match) -> None:
        if os.path.realpath(path) in self.fixed:
            return
        try:
            info = os.lstat(path)
        except OSError:
            return
        if not stat.S_ISREG(info.st_mode):
            return
        directory = os.path.dirname(match.source.template)
        own_directory = any(f"{{{name}}}" in directory for name in ("epoch", "step"))
        seen = Seen(path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, own_directory)
        self.files.setdefault(run, {}).setdefault(epoch, {})[path] = seen

    # --- removing ----------------------------------------------------------------------------------------
    def _enforce(self, run: str) -> None:
        epochs = self.files.get(run, {})
        record = self.ledger.runs.get(run)
        done = sorted(record.done) if record is not None else []
        kept = set(done[-self.keep :]) if self.keep > 0 else set()
        for epoch in sorted(epochs):
            if epoch in kept or not self.ledger.is_done(run, epoch):
                continue
            left = self._remove_epoch(run, epoch, epochs[epoch])
            if left:
                epochs[epoch] = left
            else:
                del epochs[epoch]
        if not epochs:
            self.files.pop(run, None)

    def _remove_epoch(self, run: str, epoch: int, files: dict[str, Seen]) -> dict[str, Seen]:
        """Remove what may go; return the files to look at again later (changed too recently)."""
        count = size = 0
        left: dict[str, Seen] = {}
        directories: set[str] = set()
        for path, seen in files.items():
            verdict = self._removable(seen)
            if verdict == "later":
                left[path] = seen
                continue
            if verdict == "gone":
                continue
            if verdict:
                log.warning("run=%s epoch=%d kept %s: %s", run_label(run), epoch, path, verdict)
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning(
                    "run=%s epoch=%d cannot remove %s: %s", run_label(run), epoch, path, exc.strerror or exc
                )
                continue
            count += 1
            size += seen.size
            if seen.epoch_directory:
                directories.add(os.path.dirname(path))
        for directory in directories:
            if os.path.realpath(directory) != self.root:
                # Only if empty: anything else in it (a trigger, the producer's own files) keeps it.
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
        if count:
            self.removed_files += count
            self.removed_bytes += size
            log.info(
                "run=%s epoch=%d removed %d dump files (%d bytes): logged, outside watch.retention",
                run_label(run),
                epoch,
                count,
                size,
            )
            if self.on_removed is not None:
                self.on_removed(run, epoch, count, size)
        return left

    def _removable(self, seen: Seen) -> str:
        """ "" if `seen` may be removed now, "later" if it changed too recently, else why it must stay."""
        try:
            info = os.lstat(seen.path)
        except FileNotFoundError:
            return "gone"
        except OSError as exc:
            return f"cannot check it ({exc.strerror or exc})"
        if not stat.S_ISREG(info.st_mode):
            return "no longer a regular file"
        if (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) != (
            seen.device,
            seen.inode,
            seen.size,
            seen.mtime_ns,
        ):
            return "replaced or rewritten since it was logged"
        if self.clock() - info.st_mtime_ns / 1e9 < self.settle:
            return "later"
        return ""


def attach_retention(
    config: Config, processor: Committing, *, on_removed: OnRemoved | None = None
) -> Retention | None:
    """Turn `watch.retention` on for `processor` (its after-commit hook) and finish what a crash left."""
    keep = config.watch.retention
    if keep is None:
        return None
    plan = processor.plan
    fixed = plan.fixed_files
    retention = Retention(
        keep=keep,
        root=config.watch.root,
        layout=plan.layout,
        roles=[role for role in plan.required_roles if role not in fixed],
        fixed_files=fixed.values(),
        ledger=processor.ledger,
        settle=config.watch.settle,
        on_removed=on_removed,
    )
    retention.sweep()
    processor.on_commit = retention.after_commit
    return retention
