"""The durable record of what is done, per logdir: written to a temp file, fsynced, renamed into place.

Per run it keeps the epochs whose summaries are flushed (the last one bounds what may still be written: steps
go up), and the epochs set aside with the fingerprint of the files that failed, so the same bad files are not
retried and reported again and again.

When `tensorboard.logdir` holds `{run}`, each run directory keeps its own ledger (`RunLedgers`): the directories
are shared with the training job's writers, and a run's record belongs beside its event files.

A local ledger is a snapshot plus an append-only journal (`.segwatch-ledger.journal`, one JSON line per
change, fsynced): a commit costs one short line however long the history, and the snapshot is rewritten only
when the journal has grown past it (and on close), so the rewriting costs O(1) per commit on average. A
torn last line (a kill mid-append) is dropped before the next append; snapshots from before the journal
existed load as they are. URL logdirs, whose object stores cannot append, rewrite the snapshot per change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from segwatch.output import rundirs, storage

log = logging.getLogger(__name__)

LEDGER_NAME = ".segwatch-ledger.json"
JOURNAL_NAME = ".segwatch-ledger.journal"
_VERSION = 1
# The journal is folded into the snapshot once it is larger than the snapshot and at least this big.
_COMPACT_MIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class SetAside:
    reason: str
    fingerprint: str


# Fingerprints of the files of this many of a run's latest logged epochs are kept, to notice a re-dump (a job
# resumed from a checkpoint writes its last epochs again) without the ledger growing with the history.
KEEP_FINGERPRINTS = 8


@dataclass
class RunRecord:
    done: set[int] = field(default_factory=set)
    set_aside: dict[int, SetAside] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)

    def keep(self, epoch: int, fingerprint: str) -> None:
        self.fingerprints[epoch] = fingerprint
        for old in sorted(self.fingerprints)[:-KEEP_FINGERPRINTS]:
            del self.fingerprints[old]

    @property
    def last_epoch(self) -> int | None:
        return max(self.done, default=None)


class Ledger:
    """What is done in one logdir. Every change is on disk before the method returns."""

    def __init__(self, path: str, runs: dict[str, RunRecord] | None = None) -> None:
        self.path = path
        self.runs: dict[str, RunRecord] = runs or {}
        self.journal_path = storage.join(
            os.path.dirname(path) if not storage.is_url(path) else path.rsplit("/", 1)[0], JOURNAL_NAME
        )
        self._journal_bytes: int | None = None  # unknown until the first append checks the file
        self._snapshot_bytes = 0

    @classmethod
    def open(cls, logdir: str | os.PathLike[str]) -> Ledger:
        """Load the ledger of `logdir`; a missing or unreadable one starts empty (recovery fills it in)."""
        path = storage.join(os.fspath(logdir), LEDGER_NAME)
        raw = storage.read_bytes(path)
        ledger = cls(path)
        if raw is not None:
            try:
                # Decoded in here: a torn or overwritten ledger need not even be UTF-8.
                ledger.runs = _parse(json.loads(raw.decode("utf-8")))
                ledger._snapshot_bytes = len(raw)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("%s: ledger unreadable (%s); rebuilding it from the event files", path, exc)
        if not storage.is_url(path):
            ledger._replay()
        return ledger

    def _replay(self) -> None:
        """Apply the journal's changes on top of the snapshot; unreadable lines (a torn tail) are skipped."""
        try:
            with open(self.journal_path, "rb") as journal:
                lines = journal.read().split(b"\n")
        except FileNotFoundError:
            return
        runs = dict(self.runs)
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line.decode("utf-8"))
                run = str(entry["run"])
                old = runs.get(run, RunRecord())
                record = RunRecord(set(old.done), dict(old.set_aside), dict(old.fingerprints))
                for epoch_text, fingerprint in entry.get("fingerprints", {}).items():
                    record.keep(int(epoch_text), str(fingerprint))
                if "done" in entry:
                    for epoch in entry["done"]:
                        if not isinstance(epoch, int) or epoch < 0:
                            raise ValueError(f"bad epoch {epoch!r}")
                        record.done.add(epoch)
                        record.set_aside.pop(epoch, None)
                elif "set_aside" in entry:
                    aside = entry["set_aside"]
                    record.set_aside[int(aside["epoch"])] = SetAside(
                        str(aside["reason"]), str(aside["fingerprint"])
                    )
                runs[run] = record
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.debug("%s: skipping an unreadable journal line: %s", self.journal_path, exc)
        self.runs = runs

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

    def commit(self, run: str, epoch: int, fingerprint: str | None = None) -> None:
        """Record that `epoch` of `run` is flushed to the event files (and the fingerprint of its files)."""
        self.commit_all(run, [epoch], fingerprint=fingerprint)

    def commit_all(self, run: str, epochs: list[int], *, fingerprint: str | None = None) -> None:
        """Record several flushed epochs, in ascending order, with one write."""
        old = self.runs.get(run, RunRecord())
        record = RunRecord(set(old.done), dict(old.set_aside), dict(old.fingerprints))
        for epoch in epochs:
            last = record.last_epoch
            if last is not None and epoch <= last:
                raise ValueError(f"run {run!r}: epoch {epoch} is not above the last committed epoch {last}")
            record.done.add(epoch)
            record.set_aside.pop(epoch, None)
        entry: dict[str, Any] = {"run": run, "done": list(epochs)}
        if fingerprint is not None and epochs:
            record.keep(epochs[-1], fingerprint)
            entry["fingerprints"] = {str(epochs[-1]): fingerprint}
        self._change({**self.runs, run: record}, entry)

    def done_fingerprint(self, run: str, epoch: int) -> str | None:
        """The fingerprint the files of a logged epoch had when it was logged (recent epochs only)."""
        record = self.runs.get(run)
        return None if record is None else record.fingerprints.get(epoch)

    def note_fingerprint(self, run: str, epoch: int, fingerprint: str) -> None:
        """Remember the current fingerprint of a logged epoch's files, so a re-dump is reported once."""
        old = self.runs.get(run, RunRecord())
        record = RunRecord(set(old.done), dict(old.set_aside), dict(old.fingerprints))
        record.keep(epoch, fingerprint)
        self._change({**self.runs, run: record}, {"run": run, "fingerprints": {str(epoch): fingerprint}})

    def forget(self, run: str) -> None:
        """Drop everything recorded for `run` (its history is about to be logged again), durably.

        The snapshot is written without the run first, then the journal emptied: replaying it would bring the
        run's old entries back. (A crash between the two is finished by the relog that called this.)"""
        self._save({**self.runs, run: RunRecord()})
        self._clear_journal()

    def _clear_journal(self) -> None:
        if storage.is_url(self.path) or not os.path.exists(self.journal_path):
            return
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._journal_bytes = 0

    def set_aside(self, run: str, epoch: int, *, reason: str, fingerprint: str) -> None:
        old = self.runs.get(run, RunRecord())
        record = RunRecord(
            set(old.done), {**old.set_aside, epoch: SetAside(reason, fingerprint)}, dict(old.fingerprints)
        )
        entry = {"run": run, "set_aside": {"epoch": epoch, "reason": reason, "fingerprint": fingerprint}}
        self._change({**self.runs, run: record}, entry)

    def _change(self, runs: dict[str, RunRecord], entry: dict[str, Any]) -> None:
        """Record one change durably, then adopt `runs`: if the write fails, memory still matches the disk."""
        if storage.is_url(self.path):
            self._save(runs)
            return
        self._append(json.dumps(entry, sort_keys=True).encode() + b"\n")
        self.runs = runs
        assert self._journal_bytes is not None
        if self._journal_bytes > max(_COMPACT_MIN_BYTES, self._snapshot_bytes):
            self.compact()

    def _append(self, line: bytes) -> None:
        os.makedirs(os.path.dirname(self.journal_path) or ".", exist_ok=True)
        fd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            if self._journal_bytes is None and size:
                # A kill mid-append leaves a line without its newline; the next line must not join it.
                size = self._drop_torn_tail(fd, size)
            try:
                os.write(fd, line)
                os.fsync(fd)
            except BaseException:
                # Best effort: what failed to be recorded must not count as recorded after a restart.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            self._journal_bytes = size + len(line)
        finally:
            os.close(fd)

    def _drop_torn_tail(self, fd: int, size: int) -> int:
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if tail.endswith(b"\n"):
            return size
        cut = size - len(tail) + tail.rfind(b"\n") + 1
        os.ftruncate(fd, max(cut, 0))
        log.info("%s: dropped a torn last line (%d bytes)", self.journal_path, size - max(cut, 0))
        return max(cut, 0)

    def compact(self) -> None:
        """Fold the journal into the snapshot (written atomically first, so a crash loses nothing)."""
        if storage.is_url(self.path) or not self._journal_bytes:
            return
        self._save(self.runs)
        self._clear_journal()

    def close(self) -> None:
        """Leave a complete snapshot behind, for readers of the file and the next start-up."""
        try:
            self.compact()
        except OSError as exc:
            log.warning(
                "%s: cannot fold the journal into the ledger (%s); it is replayed at start-up",
                self.path,
                exc.strerror or exc,
            )

    def _save(self, runs: dict[str, RunRecord]) -> None:
        """Write `runs` durably, then adopt them: if the write fails (OSError), memory still matches the disk."""
        data = json.dumps(_render(runs), sort_keys=True).encode()
        storage.write_atomically(self.path, data)
        self.runs = runs
        self._snapshot_bytes = len(data)


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

    def _change(self, runs: dict[str, RunRecord], entry: dict[str, Any]) -> None:
        # Each run's file holds only that run: rewriting it costs the run's own (range-compressed) history.
        self._save(runs)

    def compact(self) -> None:
        return

    def _clear_journal(self) -> None:
        return  # each run's file is rewritten whole: there is no journal

    def _save(self, runs: dict[str, RunRecord]) -> None:
        # Only the runs whose record changed are written; each into its own directory's file.
        for run, record in runs.items():
            if self.runs.get(run) is not record:
                data = json.dumps(_render({run: record}), sort_keys=True).encode()
                storage.write_atomically(self.path_for(run), data)
                self.runs = {**self.runs, run: record}
        self.runs = runs


def read_document(logdir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ledger of `logdir`, journal included, as its JSON snapshot holds it (for tools and tests)."""
    return _render(open_ledger(logdir).runs)


def remove_stale_temps(directory: str) -> int:
    """Delete the temporary files of ledger writes a kill interrupted; call only while holding the lock."""
    removed = 0
    if storage.is_url(directory):
        return removed
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if name.startswith(LEDGER_NAME + ".") and name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
                removed += 1
    if removed:
        log.info("%s: removed %d temporary ledger files left by an interrupted write", directory, removed)
    return removed


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
                "fingerprints": {str(epoch): fp for epoch, fp in sorted(record.fingerprints.items())},
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
            # Absent from ledgers written before re-dumps were noticed.
            fingerprints={int(epoch): str(fp) for epoch, fp in raw.get("fingerprints", {}).items()},
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
