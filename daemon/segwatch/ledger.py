"""The durable record of what is done, per logdir: written to a temp file, fsynced, renamed into place.

Per run it keeps the epochs whose summaries are flushed (the last one bounds what may still be written: steps
go up), and the epochs set aside with the fingerprint of the files that failed, so the same bad files are not
retried and reported again and again.

When `tensorboard.logdir` holds `{run}`, each run directory keeps its own ledger (`RunLedgers`): the directories
are shared with the training job's writers, and a run's record belongs beside its event files.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from segwatch import rundirs, storage

log = logging.getLogger(__name__)

LEDGER_NAME = ".segwatch-ledger.json"
_VERSION = 1


@dataclass(frozen=True)
class SetAside:
    reason: str
    fingerprint: str


@dataclass
class RunRecord:
    done: set[int] = field(default_factory=set)
    set_aside: dict[int, SetAside] = field(default_factory=dict)

    @property
    def last_epoch(self) -> int | None:
        return max(self.done, default=None)


class Ledger:
    """What is done in one logdir. Every change is on disk before the method returns."""

    def __init__(self, path: str, runs: dict[str, RunRecord] | None = None) -> None:
        self.path = path
        self.runs: dict[str, RunRecord] = runs or {}

    @classmethod
    def open(cls, logdir: str | os.PathLike[str]) -> Ledger:
        """Load the ledger of `logdir`; a missing or unreadable one starts empty (recovery fills it in)."""
        path = storage.join(os.fspath(logdir), LEDGER_NAME)
        raw = storage.read_bytes(path)
        if raw is None:
            return cls(path)
        try:
            # Decoded in here: a torn or overwritten ledger need not even be UTF-8.
            return cls(path, _parse(json.loads(raw.decode("utf-8"))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s: ledger unreadable (%s); rebuilding it from the event files", path, exc)
            return cls(path)

    def path_for(self, run: str) -> str:
        """The file that records `run`."""
        return self.path

    def last_epoch(self, run: str) -> int | None:
        record = self.runs.get(run)
        return None if record is None else record.last_epoch

    def is_done(self, run: str, epoch: int) -> bool:
        record = self.runs.get(run)
        return record is not None and epoch in record.done

    def set_aside_fingerprint(self, run: str, epoch: int) -> str | None:
        record = self.runs.get(run)
        entry = None if record is None else record.set_aside.get(epoch)
        return None if entry is None else entry.fingerprint

    def commit(self, run: str, epoch: int) -> None:
        """Record that `epoch` of `run` is flushed to the event files."""
        self.commit_all(run, [epoch])

    def commit_all(self, run: str, epochs: list[int]) -> None:
        """Record several flushed epochs, in ascending order, with one write."""
        old = self.runs.get(run, RunRecord())
        record = RunRecord(set(old.done), dict(old.set_aside))
        for epoch in epochs:
            last = record.last_epoch
            if last is not None and epoch <= last:
                raise ValueError(f"run {run!r}: epoch {epoch} is not above the last committed epoch {last}")
            record.done.add(epoch)
            record.set_aside.pop(epoch, None)
        self._save({**self.runs, run: record})

    def set_aside(self, run: str, epoch: int, *, reason: str, fingerprint: str) -> None:
        old = self.runs.get(run, RunRecord())
        record = RunRecord(set(old.done), {**old.set_aside, epoch: SetAside(reason, fingerprint)})
        self._save({**self.runs, run: record})

    def _save(self, runs: dict[str, RunRecord]) -> None:
        """Write `runs` durably, then adopt them: if the write fails (OSError), memory still matches the disk."""
        storage.write_atomically(self.path, json.dumps(_render(runs), sort_keys=True).encode())
        self.runs = runs


class RunLedgers(Ledger):
    """One ledger file per run directory, for a logdir pattern with `{run}`; the same interface as Ledger."""

    def __init__(self, logdir: str, runs: dict[str, RunRecord] | None = None) -> None:
        super().__init__(logdir, runs)
        self.logdir = logdir

    @classmethod
    def open(cls, logdir: str | os.PathLike[str]) -> RunLedgers:
        """Load the ledger of every run directory the pattern matches; a missing or unreadable one is empty."""
        pattern = os.fspath(logdir)
        runs: dict[str, RunRecord] = {}
        for run, directory in rundirs.run_directories(pattern):
            record = Ledger.open(directory).runs.get(run)
            if record is not None:
                runs[run] = record
        return cls(pattern, runs)

    def path_for(self, run: str) -> str:
        return storage.join(rundirs.run_directory(self.logdir, run), LEDGER_NAME)

    def _save(self, runs: dict[str, RunRecord]) -> None:
        # Only the runs whose record changed are written; each into its own directory's file.
        for run, record in runs.items():
            if self.runs.get(run) is not record:
                data = json.dumps(_render({run: record}), sort_keys=True).encode()
                storage.write_atomically(self.path_for(run), data)
                self.runs = {**self.runs, run: record}
        self.runs = runs


def open_ledger(logdir: str | os.PathLike[str]) -> Ledger:
    """The ledger for `tensorboard.logdir`: one file in the logdir, or one per run directory with `{run}`."""
    if rundirs.is_pattern(os.fspath(logdir)):
        return RunLedgers.open(logdir)
    return Ledger.open(logdir)


def _render(runs: dict[str, RunRecord]) -> dict[str, Any]:
    return {
        "version": _VERSION,
        "runs": {
            run: {
                "done": _to_ranges(record.done),
                "set_aside": {
                    str(epoch): {"reason": entry.reason, "fingerprint": entry.fingerprint}
                    for epoch, entry in sorted(record.set_aside.items())
                },
            }
            for run, record in runs.items()
        },
    }


def _parse(data: Any) -> dict[str, RunRecord]:
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown ledger version {data.get('version')!r}")
    runs: dict[str, RunRecord] = {}
    for run, raw in data["runs"].items():
        runs[str(run)] = RunRecord(
            done=_from_ranges(raw["done"]),
            set_aside={
                int(epoch): SetAside(str(entry["reason"]), str(entry["fingerprint"]))
                for epoch, entry in raw["set_aside"].items()
            },
        )
    return runs


def _to_ranges(epochs: set[int]) -> list[list[int]]:
    """[[first, last], ...]: epochs are nearly always contiguous, so a long run stays a few bytes."""
    ranges: list[list[int]] = []
    for epoch in sorted(epochs):
        if ranges and epoch == ranges[-1][1] + 1:
            ranges[-1][1] = epoch
        else:
            ranges.append([epoch, epoch])
    return ranges


def _from_ranges(ranges: Any) -> set[int]:
    epochs: set[int] = set()
    for first, last in ranges:
        if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last):
            raise ValueError(f"bad epoch range {[first, last]!r}")
        epochs.update(range(first, last + 1))
    return epochs
