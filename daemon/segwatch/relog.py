"""`segwatch relog`: log a run's whole history again with the current config (a new palette, new panels, a
corrected num_classes).

TensorBoard keeps the first record of a (tag, step) it loads, and steps must go up, so re-rendered epochs
cannot simply be appended: segwatch's own event files of the run are moved aside first, into
`<run directory>/.segwatch-old/<time>/`, renamed so that TensorBoard no longer takes them for event files
(their names lose "tfevents"); nothing is deleted, and the training job's event files are never touched.
Then the run's ledger entry is reset and every epoch is logged again in order, as `segwatch once` would.

Crash safety: a journal in the run directory lists the files to move before any is moved; whoever opens the
logdir next (relog, once or run) finishes the move and the reset before anything else, then drops the
journal. From then on the run is an ordinary run with nothing logged, whose logging is exactly-once as ever.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from segwatch import rundirs, storage
from segwatch.errors import ConfigError
from segwatch.ledger import Ledger
from segwatch.sink import EVENT_FILE_MARK

if TYPE_CHECKING:
    from segwatch.config import Config
    from segwatch.service import Tally

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
        log.info("run=%s finishing an interrupted relog", run or ".")
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
        log.info("run=%s moved %d event files of segwatch's into %s", run or ".", moved, into)
    return moved


def choose_runs(requested: Sequence[str], on_disk: set[str], in_ledger: set[str]) -> list[str]:
    """The runs to relog: those named (each must be known), or every run in the dump or the ledger."""
    known = on_disk | in_ledger
    if not requested:
        return sorted(known)
    unknown = [run for run in requested if run not in known]
    if unknown:
        listing = ", ".join(sorted(run or "." for run in known)) or "none"
        raise ConfigError(
            f"relog: no run named {', '.join(map(repr, unknown))} in the dump or the ledger (known runs: {listing})"
        )
    return list(dict.fromkeys(requested))


def relog(config: Config, requested: Sequence[str] = ()) -> Tally:
    """Log the history of the `requested` runs (every run when none) again with `config`; returns the tally.

    Refuses (ConfigError) a run whose logged epochs are no longer all under the root: relogging it would drop
    them from TensorBoard.
    """
    from segwatch.ledger import open_ledger
    from segwatch.lock import holding
    from segwatch.logdirs import hold_logdir
    from segwatch.service import discover, run_once

    root = config.watch.root
    if not root.is_dir():
        raise ConfigError(f"watch.root: {root} does not exist; relog re-renders the dump files found there")
    logdir = config.tensorboard.logdir
    # One lock from the first move to the last epoch: no other segwatch may write these runs meanwhile.
    with holding("relog") as locks:
        hold_logdir(locks, logdir)
        ledger = open_ledger(logdir)
        finish_interrupted_relogs(logdir, ledger)
        artifacts, _ = discover(config)
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
                    f"relog: run {run or '.'}: logged epochs {shown} are no longer complete under watch.root "
                    f"{root}; relogging would drop them from TensorBoard (restore their files, or leave the run "
                    "out)"
                )
        for run in runs:
            moved = start_relog(logdir, run, ledger)
            log.info(
                "run=%s relog: %d old event files set aside; logging its epochs again", run or ".", moved
            )
        ledger.close()
        return run_once(config, runs=set(runs), locks=locks)
