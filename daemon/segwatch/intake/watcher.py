"""Live hints about dump files: watchdog observers on the root, supervised, between the scans of scan.py."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from segwatch.errors import ConfigError
from segwatch.intake.observers import ObserverKind, describe_inotify_error
from segwatch.intake.paths import relative_hint, symlinked_directory
from segwatch.intake.scan import scan_tree

log = logging.getLogger(__name__)


def _new_observer(kind: ObserverKind, poll_interval: float) -> BaseObserver:
    if kind == "polling":
        # lstat, as scans and inotify see the tree: with stat, a symlinked directory would be walked (out of
        # the root, or round a loop back to the root dozens of times deep).
        return PollingObserverVFS(stat=os.lstat, listdir=os.scandir, polling_interval=poll_interval)
    from watchdog.observers.inotify import InotifyObserver

    return InotifyObserver()


_IN_DELETE_SELF = 0x400


class _WatchProbe:
    """Asks inotify for one more watch and gives it straight back: whether the per-user watch limit is reached.

    watchdog skips sub-directories it cannot watch without a word, so past fs.inotify.max_user_watches files
    written into new directories would go unseen until a rescan; this probe is the only sign of it.
    """

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(os.O_CLOEXEC)
        if fd < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        self._fd: int | None = fd

    def limit_reached(self, directory: Path) -> OSError | None:
        """The ENOSPC error a new watch on `directory` gets now, or None when one more watch fits."""
        if self._fd is None:
            return None
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), _IN_DELETE_SELF)
        if wd < 0:
            number = ctypes.get_errno()
            return OSError(number, "inotify watch limit reached") if number == errno.ENOSPC else None
        self._libc.inotify_rm_watch(self._fd, wd)
        return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _directory_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the directory at `path`, or None if there is none: tells a recreated root apart."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None


def _join_unless_current(thread: threading.Thread) -> None:
    # A callback may stop the watcher from a watcher thread; a thread cannot join itself.
    if thread is not threading.current_thread() and thread.ident is not None:
        thread.join()


class _HintHandler(FileSystemEventHandler):
    """Turns watchdog events into on_change hints. Runs on the observer's dispatch thread."""

    def __init__(
        self, root: Path, on_change: Callable[[str], None], on_root_deleted: Callable[[], None]
    ) -> None:
        super().__init__()
        self._root = str(root)
        self._on_change = on_change
        self._on_root_deleted = on_root_deleted

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._interpret(event)
        except Exception:
            # Escaping here would end watchdog's dispatch thread, and every later hint with it.
            log.exception("handling %r failed", event)

    def _interpret(self, event: FileSystemEvent) -> None:
        if event.is_synthetic:
            # watchdog's own listing of a moved-in directory; _report_tree lists it without hidden entries.
            return
        if isinstance(event, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent)):
            self._report(event.src_path)
        elif isinstance(event, FileMovedEvent):
            self._report(event.dest_path)
        elif isinstance(event, DirCreatedEvent):
            # A directory can arrive already full (cp -r, or a rename from outside the root).
            self._report_tree(event.src_path)
        elif isinstance(event, DirMovedEvent):
            # inotify reports only the directory's rename, nothing for the files it carries in.
            self._report_tree(event.dest_path)
        elif isinstance(event, DirDeletedEvent) and os.fsdecode(event.src_path) == self._root:
            self._on_root_deleted()

    def _relative(self, path: bytes | str) -> str | None:
        return relative_hint(os.fsdecode(path), self._root)

    def _report(self, path: bytes | str) -> None:
        relative = self._relative(path)
        if relative is None:
            return
        try:
            if symlinked_directory(os.fsdecode(path), Path(self._root)):
                return
        except OSError:
            pass  # gone already, or a loop: hinted all the same, the reader finds out
        self._emit(relative)

    def _report_tree(self, directory: bytes | str) -> None:
        relative = self._relative(directory)
        if relative is None:
            return
        # Listed like a scan lists it: the directory too, in case it stands where a dump file should be.
        self._emit(relative)
        for inside in scan_tree(Path(os.fsdecode(directory))):
            self._emit(f"{relative}/{inside}")

    def _emit(self, relative: str) -> None:
        try:
            self._on_change(relative)
        except Exception:
            log.exception("on_change(%r) failed; a rescan will find the file", relative)


class Watcher:
    """Live hints about changed files under root. Events are hints, not truth: the service reconciles with scans.

    `on_change(path)` gets every file created, modified, closed after writing or moved into place under the
    root, as a `/`-separated path relative to it; paths with a hidden segment (where producers stage) are
    skipped, and a directory renamed or copied in is listed file by file. `on_rescan_needed(reason)` is called
    when events may have been lost. Both run on watcher threads and must be cheap: enqueue and return.

    Every `poll_interval` seconds a supervisor checks that the observer threads are alive and still watch the
    directory now at the root. It restarts the observer, then asks for a rescan, when the root was deleted and
    recreated or an observer thread died, and it waits for a missing root to appear. If inotify hits its watch
    or instance limit, at start or later, the watcher logs the limit to raise and polls instead: watchdog skips
    sub-directories it cannot watch without a word, so the supervisor probes for one more watch each period.

    Not reported: inotify queue overflow. watchdog 7 handles IN_Q_OVERFLOW itself (a warning from
    `watchdog.observers.inotify_c`, pending moves dropped, watches re-added) and passes nothing to handlers. The
    service's periodic rescan finds what that misses.
    """

    def __init__(
        self,
        root: Path,
        *,
        kind: ObserverKind,
        poll_interval: float,
        on_change: Callable[[str], None],
        on_rescan_needed: Callable[[str], None],
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive seconds, got {poll_interval!r}")
        # Resolved: inotify would watch a symlinked root's link, not the directory it points to.
        self._root = root.resolve()
        self._kind: ObserverKind = kind
        self._poll_interval = poll_interval
        self._on_rescan_needed = on_rescan_needed
        self._handler = _HintHandler(self._root, on_change, self._note_root_deleted)
        self._observer: BaseObserver | None = None
        self._probe: _WatchProbe | None = None
        self._watched_identity: tuple[int, int] | None = None
        self._root_deleted = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    @property
    def kind(self) -> ObserverKind:
        """The observer in use: an inotify watcher falls back to polling when inotify hits a limit."""
        return self._kind

    @property
    def watching(self) -> bool:
        """Whether an observer is on the root now (False before start, after stop, and while the root is missing)."""
        return self._observer is not None

    def start(self) -> None:
        """Start watching; returns once events under the root are being observed (or the root is awaited)."""
        with self._lifecycle:
            if self._supervisor is not None or self._stopping.is_set():
                raise RuntimeError("a Watcher can be started only once")
            try:
                self._arm()
            except FileNotFoundError:
                log.warning("watch root %s does not exist yet; waiting for it to appear", self._root)
            except OSError as error:
                raise ConfigError(f"cannot watch {self._root}: {error}") from error
            else:
                log.info("watching %s with the %s observer", self._root, self._kind)
            self._supervisor = threading.Thread(target=self._supervise, name="segwatch-watcher", daemon=True)
            self._supervisor.start()

    def stop(self) -> None:
        """Stop watching and join the watcher's threads. Idempotent; callbacks get no calls after it returns."""
        with self._lifecycle:
            self._stopping.set()
            self._wake.set()
            if self._supervisor is not None:
                _join_unless_current(self._supervisor)
            self._disarm()

    def _note_root_deleted(self) -> None:
        self._root_deleted.set()
        self._wake.set()

    def _arm(self) -> None:
        identity = _directory_identity(self._root)
        if identity is None:
            raise FileNotFoundError(errno.ENOENT, "no directory here", str(self._root))
        self._root_deleted.clear()
        try:
            observer = self._start_observer(self._kind)
            if self._kind == "inotify":
                self._probe = _WatchProbe()
                limit = self._probe.limit_reached(self._root)
                if limit is not None:
                    # watchdog watched what it could and skipped the rest of the tree.
                    observer.stop()
                    _join_unless_current(observer)
                    raise limit
        except OSError as error:
            self._close_probe()
            if self._kind != "inotify" or error.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            self._fall_back_to_polling(error)
            observer = self._start_observer(self._kind)
        self._observer = observer
        self._watched_identity = identity

    def _fall_back_to_polling(self, error: OSError) -> None:
        log.error(
            "inotify cannot watch %s: %s; polling every %gs instead",
            self._root,
            describe_inotify_error(error),
            self._poll_interval,
        )
        self._kind = "polling"

    def _close_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()

    def _start_observer(self, kind: ObserverKind) -> BaseObserver:
        observer = _new_observer(kind, self._poll_interval)
        try:
            observer.schedule(self._handler, str(self._root), recursive=True)
            observer.start()
        except BaseException:
            observer.stop()  # the inotify reader thread starts with the observer object, before start()
            raise
        return observer

    def _disarm(self) -> None:
        self._close_probe()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            _join_unless_current(observer)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._poll_interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._check_observer()
            except Exception:
                log.exception("checking the observer of %s failed; retrying", self._root)

    def _check_observer(self) -> None:
        identity = _directory_identity(self._root)
        if self._observer is None:
            if identity is not None:
                again = "was recreated" if self._watched_identity is not None else "appeared"
                self._restart(f"watch root {self._root} {again}")
            return
        if identity is None:
            log.warning("watch root %s disappeared; waiting for it to come back", self._root)
            self._disarm()
            return
        if identity != self._watched_identity or self._root_deleted.is_set():
            self._restart(f"watch root {self._root} was deleted and recreated")
            return
        stopped = [thread.name for thread in self._observer_threads(self._observer) if not thread.is_alive()]
        if stopped:
            log.error(
                "observer thread(s) %s stopped unexpectedly (see the traceback above); restarting",
                ", ".join(stopped),
            )
            self._restart(f"the {self._kind} observer of {self._root} stopped unexpectedly")
            return
        limit = None if self._probe is None else self._probe.limit_reached(self._root)
        if limit is not None:
            # New directories now go unwatched, and files written into them unseen: poll instead.
            self._fall_back_to_polling(limit)
            self._restart(f"the inotify watch limit was reached under {self._root}")

    @staticmethod
    def _observer_threads(observer: BaseObserver) -> list[threading.Thread]:
        threads: list[threading.Thread] = [observer, *list(observer.emitters)]
        # watchdog reads inotify on a thread of its own with no public handle; if it dies, the emitter waits
        # forever on a live thread, so look for it by its (private) name and skip the check if it moved.
        reader = getattr(observer, "_inotify_fd", None)
        if isinstance(reader, threading.Thread):
            threads.append(reader)
        return threads

    def _restart(self, reason: str) -> None:
        self._disarm()
        self._arm()
        log.info("watching %s with the %s observer again; rescan needed: %s", self._root, self._kind, reason)
        try:
            self._on_rescan_needed(reason)
        except Exception:
            log.exception("on_rescan_needed(%r) failed", reason)
