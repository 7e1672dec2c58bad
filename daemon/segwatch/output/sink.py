"""TensorBoard output: one TensorFlow summary writer per run directory, steps strictly ascending per run."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from segwatch.errors import SinkError
from segwatch.output import rundirs
from segwatch.output.eventfile import EventFile
from segwatch.output.storage import is_url
from segwatch.output.storage import join as storage_join
from segwatch.summaries import Summary, serialized
from segwatch.tfquiet import import_tensorflow
from segwatch.units import run_label

log = logging.getLogger(__name__)

# Every event file segwatch writes ends with this, so recovery can tell ours from a training job's writer
# sharing the run directory.
EVENT_FILE_MARK = ".segwatch"
# Open event files (one descriptor each) are bounded whatever the number of runs: past this many, the least
# recently written run's file is closed, and its next epoch starts a new one.
MAX_OPEN_WRITERS = 64


def _tf() -> Any:
    # TensorFlow takes seconds to import; only the processes that write to a URL logdir pay for it, and its
    # native start-up lines are kept off stderr.
    import_tensorflow()
    import tensorflow as tf

    return tf


def run_directory(logdir: str, run: str) -> str:
    """`<logdir>/<run>`, or the logdir with `{run}` replaced; the unnamed run writes into the logdir itself."""
    return rundirs.run_directory(logdir, run)


class Sink(Protocol):
    """Where the processor writes: `write` flushes before returning and raises SinkError when the output is
    broken."""

    logdir: str

    def write(self, run: str, step: int, summaries: Sequence[Summary]) -> None: ...

    def close_idle(self, idle: float) -> int: ...

    def close(self) -> None: ...


class EventSink:
    """Writes summaries to `<logdir>/<run>/` event files and flushes them before returning.

    TensorBoard's default loader drops every stored step >= s when a record with step s arrives, so a step
    that is not above the last one written for its run is refused here rather than silently corrupting a run.
    """

    def __init__(
        self,
        logdir: str,
        *,
        prepare: Callable[[str], None] | None = None,
        max_open: int = MAX_OPEN_WRITERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Local event files are written directly (eventfile.py); only URL logdirs need TensorFlow, whose import
        # is then paid at start-up, not in the first epoch's latency.
        self.local = not is_url(logdir)
        if not self.local:
            _tf()
        self.logdir = logdir
        # Called with a run directory before its first writer is made (the `{run}` logdir's per-run lock).
        self._prepare = prepare
        self._max_open = max_open
        self._clock = clock
        # Most recently used last: the first one is closed when a new writer would exceed `max_open`.
        self._writers: OrderedDict[str, Any] = OrderedDict()
        self._used: dict[str, float] = {}
        self._suffixes: dict[str, str] = {}
        self._files: dict[str, str] = {}
        self._last_step: dict[str, int] = {}
        self._created: dict[str, int] = {}

    def write(self, run: str, step: int, summaries: Sequence[Summary]) -> None:
        """Write every summary at `step` and flush; raises SinkError if the output is broken."""
        last = self._last_step.get(run)
        if last is not None and step <= last:
            raise ValueError(f"run {run!r}: step {step} is not above the last step written, {last}")
        failures: tuple[type[BaseException], ...] = (
            (OSError,) if self.local else (_tf().errors.OpError, OSError)
        )
        try:
            writer = self._writer(run)
            offset = self._event_file_size(run)
            if isinstance(writer, EventFile):
                if summaries:
                    # One event for the whole epoch: it reaches the file whole or not at all.
                    writer.append(step, [serialized(summary) for summary in summaries])
            else:
                tf = _tf()
                if summaries:
                    # One op for the whole epoch: TensorFlow merges the summaries into a single event record,
                    # and the per-call dispatch is paid once.
                    with writer.as_default():
                        tf.summary.experimental.write_raw_pb(
                            tf.constant([serialized(summary) for summary in summaries], dtype=tf.string),
                            step=step,
                        )
                writer.flush()
            # TensorFlow's writer drops what it cannot write (a full disk) without raising, and a torn record
            # would hide every later one from TensorBoard: read the new record's framing back before anyone
            # counts the epoch as done.
            expected = 1 if summaries else 0
            written = self._records_since(run, offset)
            if written < expected:
                raise OSError(
                    f"{max(written, 0)} of {expected} records reached the event file whole (is the disk full?)"
                )
        except failures as exc:
            # The writer may hold half an epoch in its buffer; drop it so a retry starts a fresh event file.
            self._discard(run)
            # TensorFlow prefixes its messages with `{{function_node ...}}` noise; the reason follows it.
            text = re.sub(r"\{\{[^}]*\}\}", "", str(exc)).strip()
            message = text.splitlines()[0] if text else type(exc).__name__
            raise SinkError(f"{run_directory(self.logdir, run)}: cannot write summaries: {message}") from exc
        except Exception:
            # Not the output's fault (the processor contains it), but no record of this step may stay buffered
            # for the next epoch's flush to carry out under the wrong step.
            self._discard(run)
            raise
        self._last_step[run] = step

    def close_idle(self, idle: float) -> int:
        """Close the writers of runs that wrote nothing for `idle` seconds; their next epoch opens a new file."""
        cutoff = self._clock() - idle
        stale = [run for run, used in self._used.items() if used <= cutoff and run in self._writers]
        for run in stale:
            self._retire(run)
        return len(stale)

    def _retire(self, run: str) -> None:
        """Close one run's writer (everything it holds was flushed by `write` already)."""
        self._forget(run, level=logging.WARNING)

    def _forget(self, run: str, *, level: int) -> None:
        """Drop one run's writer; a failing close is logged at `level` and never raised: nothing unflushed
        is in the writer, and closing must neither stop the others nor mask an earlier error."""
        self._files.pop(run, None)
        self._used.pop(run, None)
        writer = self._writers.pop(run, None)
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:
                log.log(level, "run=%s: closing its event file failed: %s", run_label(run), exc)

    def _writer(self, run: str) -> Any:
        writer = self._writers.get(run)
        if writer is not None:
            self._writers.move_to_end(run)
        else:
            directory = run_directory(self.logdir, run)
            if self._prepare is not None:
                self._prepare(directory)
            while len(self._writers) >= self._max_open:
                self._retire(next(iter(self._writers)))
            # pid and timestamp in TensorFlow's own file name do not separate two containers (both pid 1)
            # restarted within one second; the random part does.
            suffix = f".{secrets.token_hex(4)}{EVENT_FILE_MARK}"
            self._files.pop(run, None)
            if self.local:
                writer = EventFile(directory, suffix, second=self._next_free_second(directory))
                self._files[run] = writer.path
            else:
                self._wait_for_a_new_second(run)
                writer = _tf().summary.create_file_writer(
                    directory,
                    max_queue=1000,
                    flush_millis=3_600_000,
                    filename_suffix=suffix,
                )
            self._writers[run] = writer
            self._suffixes[run] = suffix
        self._used[run] = self._clock()
        return writer

    def _wait_for_a_new_second(self, run: str) -> None:
        """For URL logdirs, where TensorFlow names the file: TensorBoard reads a directory's event files in name
        order, and names start with the creation second (then a per-process counter compared as text: 10 sorts
        before 9). A run's reopened file must sort after its previous one, or its older steps would arrive last
        and TensorBoard would purge the newer ones."""
        now = time.time()
        previous = self._created.get(run)
        if previous is not None and int(now) <= previous:
            time.sleep(previous + 1 - now)
        self._created[run] = int(time.time())

    @staticmethod
    def _next_free_second(directory: str) -> int:
        """TensorBoard reads a directory's event files in name order, and names start with the creation second
        (then host, pid and the random part, which sort anyhow). A run's new local file must sort after every
        earlier one of ours, this process's and those of a process that died within the same second, or its
        steps would arrive before the older ones. So it takes the next second no file of ours has yet: ahead
        of the clock by at most one second per restart within a second, and without waiting."""
        newest = -1
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(directory):
                parts = name.split(".")
                if name.endswith(EVENT_FILE_MARK) and len(parts) > 3 and parts[3].isdigit():
                    newest = max(newest, int(parts[3]))
        return max(int(time.time()), newest + 1)

    def _event_file(self, run: str) -> str | None:
        """The current writer's event file, found once by its unique suffix. Listed, not globbed: a run name
        or logdir such as `lr[0.1]` would be a glob pattern, not itself."""
        path = self._files.get(run)
        if path is None:
            directory = run_directory(self.logdir, run)
            suffix = self._suffixes[run]
            if is_url(directory):
                names = [name.rstrip("/") for name in _tf().io.gfile.listdir(directory)]
            else:
                names = os.listdir(directory)
            found = sorted(name for name in names if name.endswith(suffix))
            if found:
                path = self._files[run] = storage_join(directory, found[0])
        return path

    def _event_file_size(self, run: str) -> int:
        """Size of the current writer's event file (0 before TensorFlow has created it)."""
        path = self._event_file(run)
        if path is None:
            return 0
        return os.stat(path).st_size if not is_url(path) else int(_tf().io.gfile.stat(path).length)

    def _records_since(self, run: str, offset: int) -> int:
        """How many whole records follow `offset` in the writer's event file; -1 if the framing is broken."""
        path = self._event_file(run)
        if path is None:
            return 0
        if not is_url(path):
            with open(path, "rb") as local:
                local.seek(offset)
                return count_whole_records(local.read())
        with _tf().io.gfile.GFile(path, "rb") as handle:
            handle.seek(offset)
            return count_whole_records(handle.read())

    def _discard(self, run: str) -> None:
        """After a failed write: the output is already broken, so a failing close is only worth a debug line."""
        self._forget(run, level=logging.DEBUG)

    def close(self) -> None:
        self._files.clear()
        self._used.clear()
        for run in list(self._writers):
            writer = self._writers.pop(run)
            if not isinstance(writer, EventFile):
                writer.flush()
            writer.close()


def count_whole_records(data: bytes) -> int:
    """Records in a run of TFRecord frames (length, its CRC, data, data CRC), or -1 if the run is torn.

    Only the framing is checked, not the CRCs: a short or dropped write leaves a frame whose length does not
    line up with the bytes that follow, which is what a full disk does.
    """
    count, position = 0, 0
    while position < len(data):
        if position + 12 > len(data):
            return -1
        (length,) = struct.unpack_from("<Q", data, position)
        position += 12 + length + 4
        if position > len(data):
            return -1
        count += 1
    return count
