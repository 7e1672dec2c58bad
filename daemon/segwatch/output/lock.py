"""One writer per logdir: an exclusive advisory lock (`flock`) on a file in each directory segwatch writes.

Two processes writing one logdir would log every epoch twice and overwrite each other's ledger. So `run`,
`once` (and `demo`) hold `<logdir>/.segwatch.lock` for as long as they write; with `{run}` in the logdir,
each run directory is locked before the first write into it. The lock file says who holds it (pid, host,
since): a second instance reports that in one line and exits with EXIT_LOCKED.

The kernel drops a flock when its holder dies (kill -9 included), so a stale lock needs no clean-up: the next
instance simply gets it, and rewrites the holder line. The file is never deleted: a process that opened the
old file could otherwise lock it while a third locks a new one. Over NFS, Linux turns flock into a POSIX lock
the server arbitrates (one holder across machines); where the filesystem has no locking at all, or the logdir
is a URL (gs://, s3://, ram://), there is nothing to lock: a warning says so and segwatch runs unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator

from segwatch.errors import SegwatchError
from segwatch.output import storage

log = logging.getLogger(__name__)

LOCK_NAME = ".segwatch.lock"
# The exit status of a second instance that found the logdir held; distinct from 1 (failed) and 2 (usage).
EXIT_LOCKED = 3
# The holder line is read back for the message; nothing longer is believed or quoted.
_MAX_HOLDER_BYTES = 4096


class LogdirBusy(SegwatchError):
    """Another live process holds the lock: this one must not write."""


class Locks:
    """The directories this process holds, each locked once; released together by `release`."""

    def __init__(self, command: str) -> None:
        self.command = command
        self._held: dict[str, int] = {}
        self._warned_url = False

    def hold(self, directory: str) -> bool:
        """Lock `directory` (created if missing) unless already held; True if it was newly locked.

        Raises LogdirBusy naming the holder when another process has it.
        """
        if storage.is_url(directory):
            if not self._warned_url:
                self._warned_url = True
                log.warning(
                    "%s is a URL: no lock is possible there; make sure only one segwatch writes it", directory
                )
            return False
        key = os.path.realpath(directory)
        if key in self._held:
            return False
        path = os.path.join(directory, LOCK_NAME)
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # A logdir nobody can write (read-only, wrong owner) is an output failure, reported as one when the
            # first epoch is written (/readyz 503, status), not a crash at start-up.
            log.warning("%s: cannot create the lock (%s); nothing can be written there", path, exc.strerror)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LogdirBusy(
                    f"{directory} is in use by another segwatch ({holder}); "
                    f"exiting with status {EXIT_LOCKED}: stop that one first, or give this one another logdir"
                ) from None
            log.warning(
                "%s: the filesystem cannot lock (%s); running unlocked: make sure only one segwatch writes it",
                path,
                exc.strerror or exc,
            )
            return False
        self._held[key] = fd
        _write_holder(fd, self.command)
        return True

    def directories(self) -> list[str]:
        return list(self._held)

    def still_held(self, directory: str) -> bool:
        """False once the locked file is gone (the directory deleted or replaced under us)."""
        fd = self._held.get(os.path.realpath(directory))
        if fd is None:
            return False
        try:
            on_disk = os.stat(os.path.join(directory, LOCK_NAME))
        except OSError:
            return False
        held = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def forget(self, directory: str) -> None:
        """Drop the lock of a directory that is gone, so `hold` takes the new one's."""
        fd = self._held.pop(os.path.realpath(directory), None)
        if fd is not None:
            os.close(fd)

    def release(self) -> None:
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()


@contextlib.contextmanager
def holding(command: str) -> Iterator[Locks]:
    locks = Locks(command)
    try:
        yield locks
    finally:
        locks.release()


def _write_holder(fd: int, command: str) -> None:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since, "command": command})
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (line + "\n").encode(), 0)
    except OSError as exc:
        # The lock holds without the note; only the second instance's message is poorer.
        log.debug("cannot write the lock holder: %s", exc)


def _holder(fd: int) -> str:
    try:
        raw = os.pread(fd, _MAX_HOLDER_BYTES, 0)
        data = json.loads(raw.decode("utf-8"))
        return f"pid {int(data['pid'])} on host {str(data['host'])[:100]}, since {str(data['since'])[:40]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
