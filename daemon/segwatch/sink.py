"""TensorBoard output: one TensorFlow summary writer per run directory, steps strictly ascending per run."""

from __future__ import annotations

import logging
import os
import re
import secrets
import struct
from collections.abc import Sequence
from typing import Any

from segwatch import rundirs
from segwatch.errors import SinkError
from segwatch.storage import is_url
from segwatch.summaries import Summary

log = logging.getLogger(__name__)

# Every event file segwatch writes ends with this, so recovery can tell ours from a training job's writer
# sharing the run directory.
EVENT_FILE_MARK = ".segwatch"


def _tf() -> Any:
    # TensorFlow takes seconds to import; only the processes that write pay for it.
    import tensorflow as tf

    return tf


def run_directory(logdir: str, run: str) -> str:
    """`<logdir>/<run>`, or the logdir with `{run}` replaced; the unnamed run writes into the logdir itself."""
    return rundirs.run_directory(logdir, run)


class EventSink:
    """Writes summaries to `<logdir>/<run>/` event files and flushes them before returning.

    TensorBoard's default loader drops every stored step >= s when a record with step s arrives, so a step
    that is not above the last one written for its run is refused here rather than silently corrupting a run.
    """

    def __init__(self, logdir: str) -> None:
        _tf()  # pay TensorFlow's import at start-up, not in the first epoch's latency
        self.logdir = logdir
        self._writers: dict[str, Any] = {}
        self._suffixes: dict[str, str] = {}
        self._files: dict[str, str] = {}
        self._last_step: dict[str, int] = {}

    def last_step(self, run: str) -> int | None:
        return self._last_step.get(run)

    def write(self, run: str, step: int, summaries: Sequence[Summary]) -> None:
        """Write every summary at `step` and flush; raises SinkError if the output is broken."""
        last = self._last_step.get(run)
        if last is not None and step <= last:
            raise ValueError(f"run {run!r}: step {step} is not above the last step written, {last}")
        tf = _tf()
        try:
            writer = self._writer(run)
            offset = self._event_file_size(run)
            with writer.as_default():
                for summary in summaries:
                    tf.summary.write(
                        tag=summary.tag,
                        tensor=_tensor(tf, summary),
                        step=step,
                        metadata=summary.metadata,
                    )
            writer.flush()
            # TensorFlow's writer drops what it cannot write (a full disk) without raising, and a torn record
            # would hide every later one from TensorBoard: read the new records' framing back before anyone
            # counts the epoch as done.
            written = self._records_since(run, offset)
            if written < len(summaries):
                raise OSError(
                    f"{max(written, 0)} of {len(summaries)} records reached the event file whole (is the disk full?)"
                )
        except (tf.errors.OpError, OSError) as exc:
            # The writer may hold half an epoch in its buffer; drop it so a retry starts a fresh event file.
            self._discard(run)
            # TensorFlow prefixes its messages with `{{function_node ...}}` noise; the reason follows it.
            text = re.sub(r"\{\{[^}]*\}\}", "", str(exc)).strip()
            message = text.splitlines()[0] if text else type(exc).__name__
            raise SinkError(f"{run_directory(self.logdir, run)}: cannot write summaries: {message}") from exc
        self._last_step[run] = step

    def _writer(self, run: str) -> Any:
        writer = self._writers.get(run)
        if writer is None:
            tf = _tf()
            # pid and timestamp in TensorFlow's own file name do not separate two containers (both pid 1)
            # restarted within one second; the random part does.
            suffix = f".{secrets.token_hex(4)}{EVENT_FILE_MARK}"
            writer = tf.summary.create_file_writer(
                run_directory(self.logdir, run),
                max_queue=1000,
                flush_millis=3_600_000,
                filename_suffix=suffix,
            )
            self._writers[run] = writer
            self._suffixes[run] = suffix
        return writer

    def _event_file(self, run: str) -> str | None:
        """The current writer's event file; its name is found once (a glob costs about a millisecond)."""
        path = self._files.get(run)
        if path is None:
            pattern = run_directory(self.logdir, run).rstrip("/") + "/*" + self._suffixes[run]
            found = _tf().io.gfile.glob(pattern)
            if found:
                path = self._files[run] = found[0]
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
        self._files.pop(run, None)
        writer = self._writers.pop(run, None)
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:  # the output is already broken; closing must not mask the first error
                log.debug("closing the writer of run %r failed too: %s", run, exc)

    def close(self) -> None:
        self._files.clear()
        for run in list(self._writers):
            writer = self._writers.pop(run)
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


def _tensor(tf: Any, summary: Summary) -> Any:
    if isinstance(summary.payload, tuple):
        return tf.constant(list(summary.payload), dtype=tf.string)
    if isinstance(summary.payload, float):
        return tf.constant(summary.payload, dtype=tf.float32)
    return tf.constant(summary.payload, dtype=tf.string)
