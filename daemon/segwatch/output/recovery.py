"""What segwatch's own event files already hold: the truth the ledger is reconciled with at start-up.

A process can die between flushing an epoch and committing it, or in the middle of writing it. The event files
then hold records the ledger does not know about; re-writing them would show the epoch twice. So at start-up we
read back, per run, the (step, tag) pairs our files hold above the ledger's last epoch, and the processor writes
only the tags that are missing. Torn last records are ignored by the reader, as by TensorBoard.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tensorboard.backend.event_processing import event_file_loader

from segwatch.output import rundirs, storage
from segwatch.output.eventfile import read_events
from segwatch.output.ledger import Ledger
from segwatch.output.sink import EVENT_FILE_MARK
from segwatch.units import run_label

log = logging.getLogger(__name__)

# {run: {step: tags written at that step}}
WrittenTags = dict[str, dict[int, set[str]]]


def reconcile(ledger: Ledger, logdir: str | Path) -> dict[str, tuple[int, set[str]]]:
    """Bring the ledger up to what the event files hold; return each run's possibly half-written epoch.

    Every step below a run's highest unrecorded step was followed by a later one, so it was flushed whole:
    it is committed. The highest may be whole (death between flush and commit) or torn (death mid-write);
    only re-rendering tells which tags it should have, so it is returned with the tags it already has.
    """
    found = written_tags(logdir, {run: record.last_epoch for run, record in ledger.runs.items()})
    in_flight: dict[str, tuple[int, set[str]]] = {}
    for run, steps in found.items():
        *whole, last = sorted(steps)
        if whole:
            ledger.commit_all(run, whole)
        in_flight[run] = (last, steps[last])
    return in_flight


def written_tags(
    logdir: str | Path, runs_after: dict[str, int | None], *, only: str | None = None
) -> WrittenTags:
    """Tags per step found in segwatch's event files under `logdir`, above each run's floor.

    `runs_after[run]` is the ledger's last epoch for a run (None: read everything). Runs present on disk but
    unknown to the ledger are read in full, which is how a deleted or corrupt ledger is rebuilt. `only` limits
    the reading to one run.
    """
    found: WrittenTags = {}
    for run, directory in _run_directories(str(logdir)):
        if only is not None and run != only:
            continue
        floor = runs_after.get(run)
        steps: dict[int, set[str]] = {}
        for path in storage.glob_in(directory, f"events.out.tfevents.*{EVENT_FILE_MARK}"):
            # Local files are read directly: TensorBoard's loader would import TensorFlow for them.
            events = (
                event_file_loader.EventFileLoader(path).Load() if storage.is_url(path) else read_events(path)
            )
            for event in events:
                if floor is not None and event.step <= floor:
                    continue
                tags = {value.tag for value in event.summary.value}
                if tags:
                    steps.setdefault(event.step, set()).update(tags)
        if steps:
            found[run] = steps
            log.info("run=%s event files hold steps %s beyond the ledger", run_label(run), sorted(steps))
    return found


def _run_directories(logdir: str) -> list[tuple[str, str]]:
    """The unnamed run's directory and every existing run directory (with `{run}`: every match of the pattern)."""
    return rundirs.run_directories(logdir)
