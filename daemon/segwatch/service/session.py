"""One configuration at work: the watch on the dump root, readiness, and the processor, driven by `tick`.

Threads: the observer only enqueues hints (detection never waits for processing); `tick`, called by the
daemon's loop, drains them, decides what is ready and processes it, one artifact at a time, in (run, epoch)
order. What it sees and does goes to the `Reporter`. A reload or a restart is a new session.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from segwatch.errors import Outcome, SinkError
from segwatch.intake.coverage import Coverage
from segwatch.intake.layout import Artifact, ArtifactKey
from segwatch.intake.observers import choose_observer
from segwatch.intake.readiness import Readiness
from segwatch.intake.watcher import Watcher
from segwatch.output.lock import Locks
from segwatch.output.logdirs import logdir_replaced
from segwatch.plan import build_plan
from segwatch.service.discovery import fixed_relative, scan
from segwatch.service.processor import Processor, close_processor, open_processor
from segwatch.service.reporter import Reporter, deadline
from segwatch.service.retention import attach_retention

if TYPE_CHECKING:
    from segwatch.config.model import Config

__all__ = ["Session"]

log = logging.getLogger(__name__)

# How often the session checks that its logdir is still the one it locked (a stat per directory).
LOGDIR_CHECK_INTERVAL = 2.0
# The longest a pause lasts when nothing is due: a stop or reload request is seen at least this promptly.
IDLE_WAKE = 0.5
# A run that wrote nothing for this long has its event file closed (a new one opens with its next epoch), so a
# sweep of 1,000 runs does not hold 1,000 descriptors. Runs write every few minutes at most; a reopen is cheap.
WRITER_IDLE_CLOSE = 120.0
# How soon the loop looks again when an epoch came due while it was busy (never 0: no spinning).
DUE_RECHECK = 0.01

START_UP_SCAN = "start-up scan"


class Hints:
    """What the observer thread tells the loop: paths that changed, and that a full rescan is needed (and why).
    Either wakes the loop; the observer never waits for it."""

    def __init__(self, maxsize: int) -> None:
        self.wake = threading.Event()
        self._paths: queue.Queue[str] = queue.Queue(maxsize=maxsize)
        self.rescan_reason: str | None = START_UP_SCAN

    def changed(self, relative: str) -> None:
        try:
            self._paths.put_nowait(relative)
        except queue.Full:
            self.rescan_needed("hint queue full")
        self.wake.set()

    def rescan_needed(self, reason: str) -> None:
        self.rescan_reason = reason
        self.wake.set()

    def take_rescan(self) -> str | None:
        reason, self.rescan_reason = self.rescan_reason, None
        return reason

    def take(self) -> str | None:
        try:
            return self._paths.get_nowait()
        except queue.Empty:
            return None


class Backoff:
    """While the output fails: how long to wait before the next try, doubling from `first` up to `most`."""

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most = first, most
        self.delay = first
        self.until = 0.0

    def failed(self, now: float) -> float:
        """The output failed at `now`: the time of the next try."""
        self.until = now + self.delay
        self.delay = min(self.delay * 2, self.most)
        return self.until

    def succeeded(self) -> None:
        self.delay = self.first


class Session:
    """Follows the root with one configuration, from `start` to `close`.

    Everything that can refuse the configuration (its plan, readiness) is built by the constructor,
    before anything is opened, so a reload can try a new config and keep the old one if it is refused.
    `interrupted` says when a stop or reload is requested: the artifact in hand is the last one then.
    """

    def __init__(
        self, config: Config, *, locks: Locks, reporter: Reporter, interrupted: Callable[[], bool]
    ) -> None:
        self.config = config
        self.root = Path(config.watch.root)
        self.plan = build_plan(config)
        self.layout = self.plan.layout
        self.readiness = Readiness(
            self.plan.required_roles,
            settle=config.watch.settle,
            incomplete_timeout=config.watch.incomplete_timeout,
            caps=self.plan.caps,
            root=self.root,
            fixed_files=self.plan.fixed_files,
            layout=self.layout,
        )
        self.locks = locks
        self.reporter = reporter
        self.interrupted = interrupted
        # Set when the logdir vanished under the session: the next one rebuilds the ledger from what is on disk.
        self.restart: str | None = None
        self.hints = Hints(config.service.queue_size)
        self._coverage = Coverage()
        # What this session did with each epoch it finished: a late one is reported once.
        self._finished: dict[tuple[str, int], Outcome] = {}
        self._backoff = Backoff(*config.service.retry_backoff)
        self._processor: Processor | None = None
        self._watcher: Watcher | None = None
        self._next_rescan = self._next_logdir_check = float("inf")

    # --- opening and closing --------------------------------------------------------------------------
    def start(self) -> None:
        """Open the logdir (LogdirBusy if another process holds it) and start watching the root."""
        config = self.config
        processor = self._processor = open_processor(config, self.locks, plan=self.plan)
        retention = attach_retention(config, processor, on_removed=self.reporter.removed)
        self.reporter.session_started(
            status_interval=config.service.status_interval,
            retention=retention is not None,
            last_epochs=processor.last_epochs(),
        )
        kind, reason = choose_observer(self.root, config.watch.observer)
        # The watcher says "watching <root>" once it is; this line says why this observer.
        log.info("%s observer chosen: %s", kind, reason)
        self._watcher = Watcher(
            self.root,
            kind=kind,
            poll_interval=config.watch.poll_interval,
            on_change=self.hints.changed,
            on_rescan_needed=self.hints.rescan_needed,
        )
        self._watcher.start()
        self._next_rescan = deadline(config.watch.rescan_interval)
        self._next_logdir_check = time.monotonic() + LOGDIR_CHECK_INTERVAL

    def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        processor, self._processor = self._processor, None
        if watcher is not None:
            watcher.stop()
        if processor is not None:
            close_processor(processor, keep_ledger=self.restart is None)

    @property
    def processor(self) -> Processor:
        assert self._processor is not None, "Session.start() opens the processor"
        return self._processor

    # --- one round ------------------------------------------------------------------------------------
    def tick(self) -> bool:
        """One round: rescan if due, take the hints, process what is ready, report. False when the session
        must end: its logdir was deleted or replaced (`restart` says so)."""
        now = time.monotonic()
        if now >= self._next_logdir_check:
            self._next_logdir_check = now + LOGDIR_CHECK_INTERVAL
            if self._logdir_gone():
                return False
            self.processor.close_idle(WRITER_IDLE_CLOSE)
        if now >= self._next_rescan:
            self.hints.rescan_reason = self.hints.rescan_reason or "periodic rescan"
            self._next_rescan = deadline(self.config.watch.rescan_interval)
        reason = self.hints.take_rescan()
        if reason is not None:
            self._rescan(reason)
        self._drain_hints()
        self._process_ready()
        self.reporter.round_done(
            len(self.readiness), settled=not self.readiness.due_within(self.config.watch.settle)
        )
        return True

    def pause(self) -> None:
        """Sleep until something is due or the observer wakes us; bounded, so a stop or reload is seen
        promptly even if nothing wakes us."""
        deadlines = [self._next_rescan, self.reporter.next_status, self._backoff.until]
        soonest = self.readiness.next_deadline()
        if soonest is not None:
            deadlines.append(soonest)
        now = time.monotonic()
        # What is already due was handled this round; only future deadlines shorten the sleep.
        timeout = min([d - now for d in deadlines if d > now], default=IDLE_WAKE)
        if soonest is not None and soonest <= now:
            # An epoch came due while this round ran: look again soon, but never spin.
            timeout = min(timeout, DUE_RECHECK)
        self.hints.wake.wait(min(timeout, IDLE_WAKE))
        self.hints.wake.clear()

    def _logdir_gone(self) -> bool:
        gone = logdir_replaced(self.locks)
        if not gone:
            return False
        log.warning(
            "logdir %s was deleted or replaced under the daemon; rebuilding the ledger from what is on disk "
            "and logging again what is missing there",
            ", ".join(gone),
        )
        for directory in gone:
            self.locks.forget(directory)
        self.restart = "logdir replaced"
        return True

    def _rescan(self, reason: str) -> None:
        started = time.monotonic()
        first = reason == START_UP_SCAN
        # Each rescan counts the files afresh; hints between rescans only count matches (a hint may repeat).
        self._coverage = Coverage(ignored=fixed_relative(self.plan))
        count = sum(
            self._note(relative, keys, changed=first)
            for relative, keys in scan(self.root, self.layout, self._coverage)
        )
        log.debug("%s: %d relevant files in %.0f ms", reason, count, (time.monotonic() - started) * 1000)
        self._report_coverage()

    def _drain_hints(self) -> None:
        while (relative := self.hints.take()) is not None:
            keys = self.layout.keys(relative)
            was_unmatched = self._coverage.nothing_matched
            if keys:
                self._coverage.note(relative, matched=True)
            self._note(relative, keys, changed=True)
            if was_unmatched and not self._coverage.nothing_matched:
                self._report_coverage()

    def _report_coverage(self) -> None:
        root = str(self.root)
        self.reporter.coverage(root, self._coverage.unmatched, self._coverage.problem(root))

    def _note(self, relative: str, keys: list[ArtifactKey], *, changed: bool) -> int:
        """Hand a file to readiness unless its epoch is finished. `changed` (a live event, or the first scan):
        a recently logged epoch is looked at again once settled, so that a re-dump of it is reported."""
        noted = 0
        for key in keys:
            if not self.readiness.wants(key):
                continue
            recheck = changed and self.processor.files_known(key.run, key.epoch)
            finished = self._finished.get((key.run, key.epoch))
            if finished is not None and finished is not Outcome.SET_ASIDE and not recheck:
                continue
            if self.processor.is_done(key.run, key.epoch) and not recheck:
                continue
            self.readiness.note(key, str(self.root / relative))
            noted = 1
        return noted

    def _process_ready(self) -> None:
        if time.monotonic() < self._backoff.until:
            return
        ready = self.readiness.ready()
        for index, artifact in enumerate(ready):
            if self.interrupted():
                return
            started = time.perf_counter()
            try:
                result = self.processor.process(artifact)
            except SinkError as exc:
                self._output_failed(exc, ready[index:])
                return
            key = (artifact.run, artifact.epoch)
            self.reporter.handled(
                artifact, result, time.perf_counter() - started, first=key not in self._finished
            )
            self._backoff.succeeded()
            if result.outcome is Outcome.NOT_READY:
                self.readiness.retry_at(
                    artifact.run, artifact.epoch, time.monotonic() + self.readiness.settle
                )
                continue
            if result.outcome is Outcome.WAITING:
                self.readiness.wait(artifact.run, artifact.epoch, result.reason)
                continue
            self.readiness.forget(*key)
            self._finished[key] = result.outcome

    def _output_failed(self, exc: SinkError, unprocessed: list[Artifact]) -> None:
        """Back off; the failed artifact and those handed out after it are looked at again after the wait."""
        self.reporter.output_failed(unprocessed[0], str(exc), self._backoff.delay)
        retry = self._backoff.failed(time.monotonic())
        # Readiness hands an artifact out once; one not processed now would never be looked at again.
        for waiting in unprocessed:
            self.readiness.retry_at(waiting.run, waiting.epoch, retry)
