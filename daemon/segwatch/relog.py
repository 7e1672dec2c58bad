"""`segwatch relog`: log a run's whole history again with the current config (a new palette, new panels, a
corrected num_classes).

The run's own event files are moved aside first (`output.relogjournal`, crash-safe), its ledger entry is reset,
and every epoch is logged again in order by `segwatch once`'s pass, under the same hold of the logdir.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from segwatch.errors import ConfigError
from segwatch.output.ledger import open_ledger
from segwatch.output.lock import Locks, holding
from segwatch.output.logdirs import hold_logdir
from segwatch.output.relogjournal import finish_interrupted_relogs, start_relog
from segwatch.plan import build_plan
from segwatch.service.discovery import discover
from segwatch.units import run_label

if TYPE_CHECKING:
    from segwatch.config import Config

log = logging.getLogger(__name__)


def choose_runs(requested: Sequence[str], on_disk: set[str], in_ledger: set[str]) -> list[str]:
    """The runs to relog: those named (each must be known), or every run in the dump or the ledger."""
    known = on_disk | in_ledger
    if not requested:
        return sorted(known)
    unknown = [run for run in requested if run not in known]
    if unknown:
        listing = ", ".join(sorted(run_label(run) for run in known)) or "none"
        raise ConfigError(
            f"relog: no run named {', '.join(map(repr, unknown))} in the dump or the ledger (known runs: {listing})"
        )
    return list(dict.fromkeys(requested))


@contextlib.contextmanager
def relogging(config: Config, requested: Sequence[str] = ()) -> Iterator[tuple[Locks, list[str]]]:
    """Set aside the event files of the `requested` runs (every run when none) and reset their ledger entries;
    yields the held logdir and the runs, for `service.once.run_once` to log their history again with `config`.

    Refuses (ConfigError) a run whose logged epochs are no longer all under the root: relogging it would drop
    them from TensorBoard.
    """
    root = config.watch.root
    if not root.is_dir():
        raise ConfigError(f"watch.root: {root} does not exist; relog re-renders the dump files found there")
    logdir = config.tensorboard.logdir
    # One lock from the first move to the last epoch: no other segwatch may write these runs meanwhile.
    with holding("relog") as locks:
        hold_logdir(locks, logdir)
        ledger = open_ledger(logdir)
        finish_interrupted_relogs(logdir, ledger)
        artifacts, _ = discover(build_plan(config))
        present: dict[str, set[int]] = {}
        for artifact in artifacts:
            present.setdefault(artifact.run, set()).add(artifact.epoch)
        in_ledger = {run for run, record in ledger.runs.items() if record.done}
        runs = choose_runs(requested, set(present), in_ledger)
        for run in runs:
            record = ledger.runs.get(run)
            gone = sorted((record.done if record else set()) - present.get(run, set()))
            if gone:
                shown = ", ".join(map(str, gone[:10])) + (" ..." if len(gone) > 10 else "")
                raise ConfigError(
                    f"relog: run {run_label(run)}: logged epochs {shown} are no longer complete under watch.root "
                    f"{root}; relogging would drop them from TensorBoard (restore their files, or leave the run "
                    "out)"
                )
        for run in runs:
            moved = start_relog(logdir, run, ledger)
            log.info(
                "run=%s relog: %d old event files set aside; logging its epochs again", run_label(run), moved
            )
        ledger.close()
        yield locks, runs
