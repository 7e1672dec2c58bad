"""Holding the logdir: its lock (or every run directory's, with `{run}`), the clean-up only a holder may do,
and noticing that a held directory was deleted or replaced under the running daemon."""

from __future__ import annotations

import os

from segwatch.output import rundirs, storage
from segwatch.output.ledger import remove_stale_temps
from segwatch.output.lock import Locks


def hold_logdir(locks: Locks, logdir: str) -> None:
    """Lock the logdir (with `{run}`: every run directory there is; the sink locks new ones before writing),
    then clear what interrupted writes of earlier holders left behind. Raises LogdirBusy."""
    if not rundirs.is_pattern(logdir) or storage.is_url(logdir):
        directories = [logdir]  # a URL: `hold` says that it cannot be locked
    else:
        directories = [path for _, path in rundirs.run_directories(logdir) if os.path.isdir(path)]
    for directory in directories:
        hold_directory(locks, directory)


def hold_directory(locks: Locks, directory: str) -> None:
    if locks.hold(directory):
        remove_stale_temps(directory)


def logdir_replaced(locks: Locks) -> list[str]:
    """The locked directories that were deleted or replaced since they were locked."""
    return [directory for directory in locks.directories() if not locks.still_held(directory)]
