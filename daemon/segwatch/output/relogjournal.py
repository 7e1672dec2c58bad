"""The relog journal: moving a run's own event files aside, crash-safe, before its history is logged again.

TensorBoard keeps the first record of a (tag, step) it loads, and steps must go up, so re-rendered epochs
cannot simply be appended: segwatch's own event files of the run are moved aside first, into
`<run directory>/.segwatch-old/<time>/`, renamed so that TensorBoard no longer takes them for event files
(their names lose "tfevents"); nothing is deleted, and the training job's event files are never touched.

A journal in the run directory lists the files to move before any is moved; whoever opens the logdir next
(relog, once or run) finishes the move and the reset before anything else, then drops the journal. From then on
the run is an ordinary run with nothing logged, whose logging is exactly-once as ever.
"""

from __future__ import annotations

import json
import logging
import os
import time

from segwatch.errors import ConfigError
from segwatch.output import rundirs, storage
from segwatch.output.ledger import Ledger
from segwatch.output.sink import EVENT_FILE_MARK
from segwatch.units import run_label

log = logging.getLogger(__name__)

OLD_DIR = ".segwatch-old"
JOURNAL = ".segwatch-relog.json"


def retired_name(name: str) -> str:
    """The name a moved event file gets: TensorBoard reads every file whose name contains "tfevents"."""
    return name.replace("tfevents", "tf-events-retired")


def start_relog(logdir: str, run: str, ledger: Ledger, *, now: float | None = None) -> int:
    """Move `run`'s segwatch event files aside and reset its ledger entry; returns how many files moved."""
    directory = rundirs.run_directory(logdir, run)
    files = [
        os.path.basename(path)
        for path in storage.glob_in(directory, f"events.out.tfevents.*{EVENT_FILE_MARK}")
    ]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    journal: dict[str, object] = {"run": run, "files": files, "into": storage.join(OLD_DIR, stamp)}
    storage.write_atomically(storage.join(directory, JOURNAL), json.dumps(journal).encode())
    return _finish(directory, journal, ledger)


def finish_interrupted_relogs(logdir: str, ledger: Ledger) -> None:
    """Complete any relog a dead process left half done (its journal is still there): before reconciling."""
    for run, directory in rundirs.run_directories(logdir):
        raw = storage.read_bytes(storage.join(directory, JOURNAL))
        if raw is None:
            continue
        try:
            journal = json.loads(raw.decode("utf-8"))
            if journal["run"] != run:
                raise ValueError(f"journal of run {journal['run']!r} found in the directory of run {run!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{storage.join(directory, JOURNAL)}: unreadable relog journal ({exc}); move it away and run "
                "`segwatch relog` again"
            ) from None
        log.info("run=%s finishing an interrupted relog", run_label(run))
        _finish(directory, journal, ledger)


def _finish(directory: str, journal: dict[str, object], ledger: Ledger) -> int:
    """Every step may have been done already by a process that died: each is skipped when so."""
    run = str(journal["run"])
    into = storage.join(directory, str(journal["into"]))
    moved = 0
    for name in journal["files"]:  # type: ignore[attr-defined]
        source = storage.join(directory, str(name))
        if storage.exists(source):
            storage.move(source, storage.join(into, retired_name(str(name))))
            moved += 1
    ledger.forget(run)
    storage.remove(storage.join(directory, JOURNAL))
    if moved:
        log.info("run=%s moved %d event files of segwatch's into %s", run_label(run), moved, into)
    return moved
