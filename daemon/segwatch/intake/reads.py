"""Open dump files and the session that reads one artifact from them: positional reads that report a file
shrinking or rewritten under them as "changed while reading" (retry once it settles), and OS errors sorted
into those that can heal (retried) and those that set the artifact aside. FileArray (filearrays.py) reads
its elements through an OpenFile.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from segwatch.errors import ArtifactError, NotReadyError, RetryableError

__all__ = ["RETRYABLE_ERRNOS", "OpenFile", "ReadSession", "os_error"]

# Errors that can heal without the file changing: a permission fixed, descriptors freed, a server back.
RETRYABLE_ERRNOS = frozenset(
    {errno.EACCES, errno.EMFILE, errno.ENFILE, errno.ESTALE, errno.EIO, errno.ENOMEM, errno.EAGAIN}
    | ({errno.ETIMEDOUT} if hasattr(errno, "ETIMEDOUT") else set())
)


def os_error(path: Path | str, action: str, exc: OSError) -> ArtifactError:
    """The error for an OSError on a dump file: retryable when the cause can heal, else the file is bad."""
    reason = f"{path}: cannot {action} ({exc.strerror or exc})"
    if exc.errno in RETRYABLE_ERRNOS:
        return RetryableError(f"{reason}; will retry")
    return ArtifactError(reason)


def _identity(result: os.stat_result) -> tuple[int, int, int, int]:
    return (result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns)


class OpenFile:
    """One open dump file, with what it looked like when it was opened."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        try:
            self.identity = _identity(os.fstat(fd))
        except OSError as exc:
            raise os_error(path, "stat", exc) from exc

    @property
    def size(self) -> int:
        return self.identity[1]

    def changed(self, detail: str) -> NotReadyError:
        return NotReadyError(f"{self.path}: changed while reading ({detail}); retrying once it settles")

    def read_into(self, buffer: np.ndarray, offset: int) -> None:
        """Fill the C-contiguous `buffer` with the file's bytes from `offset`; a short read means the file
        shrank (it was complete when checked), raised as "changed while reading"."""
        if not buffer.flags.c_contiguous:
            raise ValueError("read_into needs a C-contiguous buffer")
        view = buffer.reshape(-1).view(np.uint8).data
        done, total = 0, len(view)
        while done < total:
            try:
                got = os.preadv(self.fd, [view[done:]], offset + done)
            except OSError as exc:
                raise os_error(self.path, "read", exc) from exc
            if got == 0:
                raise self.changed(f"{offset + done} of {offset + total} bytes there")
            done += got

    def check_unchanged(self) -> None:
        try:
            now = _identity(os.fstat(self.fd))
        except OSError as exc:
            raise os_error(self.path, "stat", exc) from exc
        if now != self.identity:
            raise self.changed("rewritten in place")

    def close(self) -> None:
        os.close(self.fd)


class ReadSession:
    """The files one artifact is read from: all closed together, and checked unchanged before the result
    counts. Use as a context manager around everything that reads the artifact's arrays."""

    def __init__(self) -> None:
        self.files: list[OpenFile] = []

    def adopt(self, fd: int, path: Path) -> OpenFile:
        try:
            opened = OpenFile(fd, path)
        except BaseException:
            os.close(fd)
            raise
        self.files.append(opened)
        return opened

    def check_unchanged(self) -> None:
        for opened in self.files:
            opened.check_unchanged()

    def close(self) -> None:
        while self.files:
            self.files.pop().close()

    def __enter__(self) -> ReadSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
