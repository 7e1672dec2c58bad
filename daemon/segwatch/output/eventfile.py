"""TensorBoard event files on a local disk, written and read without TensorFlow.

An event file is a sequence of TFRecord frames (length, masked CRC32C of the length, an `Event` protocol
buffer, masked CRC32C of it), the first holding the file version. Writing them directly spares a process that
only logs local files TensorFlow's import (seconds, and most of the daemon's memory) and lets write errors
surface as the OSError they are: TensorFlow's writer drops records on a full disk without raising. URL logdirs
still go through TensorFlow (sink.py), which has the filesystems for them.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import google_crc32c
from tensorboard.compat.proto import event_pb2, summary_pb2

__all__ = ["EventFile", "masked_crc32c", "read_events"]

_FILE_VERSION = "brain.Event:2"
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC32C rotated right by 15 bits plus a constant, so CRCs of CRCs stay useful."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _frame(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


class EventFile:
    """One new event file in `directory`, named as TensorFlow names them, with `suffix` at the end."""

    def __init__(self, directory: str | Path, suffix: str, *, second: int | None = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # The name's second orders a directory's files for TensorBoard; the caller may need a later one.
        second = int(time.time()) if second is None else second
        name = f"events.out.tfevents.{second:010d}.{socket.gethostname()}.{os.getpid()}.v2{suffix}"
        self.path = str(directory / name)
        # Exclusive creation: the random part of the suffix keeps two writers apart, this makes sure of it.
        self._handle = open(self.path, "xb")  # noqa: SIM115 - held open for the writer's lifetime
        version = event_pb2.Event(wall_time=time.time(), file_version=_FILE_VERSION)
        self._handle.write(_frame(version.SerializeToString()))
        self._handle.flush()

    def append(self, step: int, summaries: Sequence[bytes]) -> None:
        """One event at `step` holding every serialized `Summary` given (their values merged), flushed."""
        # Serialized protocol buffers concatenate into their merge: one Summary with every value.
        summary = summary_pb2.Summary.FromString(b"".join(summaries))
        event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
        self._handle.write(_frame(event.SerializeToString()))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def read_events(path: str | Path) -> Iterator[event_pb2.Event]:
    """The events of a local event file, in order; a torn or corrupt last record ends it, as in TensorBoard."""
    with open(path, "rb") as handle:
        data = handle.read()
    position = 0
    while position + 12 <= len(data):
        header = data[position : position + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack_from("<I", data, position + 8)
        end = position + 12 + length
        if header_crc != masked_crc32c(header) or end + 4 > len(data):
            return
        record = data[position + 12 : end]
        (record_crc,) = struct.unpack_from("<I", data, end)
        if record_crc != masked_crc32c(record):
            return
        yield event_pb2.Event.FromString(record)
        position = end + 4
