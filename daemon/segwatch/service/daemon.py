"""Running segwatch: the one-shot catch-up (`segwatch once`) and the long-running daemon (`segwatch run`)."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from segwatch.config import Config
from segwatch.errors import ConfigError, SegwatchError, SinkError
from segwatch.intake.coverage import Coverage
from segwatch.intake.layout import Artifact, DumpLayout, Pending
from segwatch.intake.readiness import Readiness
from segwatch.intake.watcher import scan_tree
from segwatch.output import rundirs
from segwatch.output.ledger import open_ledger
from segwatch.output.lock import Locks, holding
from segwatch.output.logdirs import hold_directory, hold_logdir, logdir_replaced
from segwatch.output.recovery import reconcile
from segwatch.output.relogjournal import finish_interrupted_relogs
from segwatch.output.sink import EventSink
from segwatch.render.pipeline import Renderer
from segwatch.service.health import Health, serve_health
from segwatch.service.notify import Notifier, status_line
from segwatch.service.processor import Outcome, Processor, describe_exception
from segwatch.service.retention import Retention, attach_retention
from segwatch.service.signals import EXIT_ABANDONED, Grace, capture_signals

__all__ = ["EXIT_ABANDONED", "Daemon", "Tally", "capture_signals", "run_daemon", "run_once"]

log = logging.getLogger(__name__)

# How often the running daemon checks that its logdir is still the one it locked (a stat per directory).
LOGDIR_CHECK_INTERVAL = 2.0
# The longest the loop sleeps when nothing is due: a stop or reload request is seen at least this promptly.
IDLE_WAKE = 0.5
# A run that wrote nothing for this long has its event file closed (a new one opens with its next epoch), so a
# sweep of 1,000 runs does not hold 1,000 descriptors. Runs write every few minutes at most; a reopen is cheap.
WRITER_IDLE_CLOSE = 120.0
# How soon the loop looks again when an epoch came due while it was busy (never 0: no spinning).
DUE_RECHECK = 0.01


@dataclass
class Tally:
    """What a pass over the dump root did, for the one-line summary and the exit code."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    incomplete: int = 0
    # Set when dump files are there but no pattern matches any of them: a run that did nothing is no success.
    nothing_matched: str = ""

    @property
    def failed(self) -> bool:
        return self.outcomes[Outcome.SET_ASIDE] + self.outcomes[Outcome.WAITING] > 0 or bool(
            self.nothing_matched
        )

    def line(self) -> str:
        parts = [f"{self.outcomes[outcome]} {outcome.value}" for outcome in Outcome]
        return ", ".join([*parts, f"{self.incomplete} incomplete"])


def discover(config: Config, coverage: Coverage | None = None) -> tuple[list[Artifact], list[Pending]]:
    """Every complete artifact under the root in (run, epoch) order, and the epochs still missing files.

    `coverage`, if given, counts the dump files that match no pattern."""
    layout = config.dump_layout()
    root = Path(config.watch.root)
    keyed = []
    for relative in scan_tree(root):
        keys = layout.keys(relative)
        if coverage is not None:
            coverage.note(relative, matched=bool(keys))
        for key in keys:
            keyed.append((key, str(root / relative)))
    return layout.group(keyed, config.required_roles, fixed_files=config.fixed_files)


def fixed_relative(config: Config) -> set[str]:
    """The fixed files that lie under the root, relative to it: they are read, though no pattern matches them."""
    root = os.path.abspath(config.watch.root)
    return {
        os.path.relpath(os.path.abspath(path), root)
        for path in config.fixed_files.values()
        if os.path.abspath(path).startswith(os.path.join(root, ""))
    }


def open_processor(config: Config, locks: Locks | None = None) -> Processor:
    """A processor over the configured logdir, its ledger reconciled with the event files already there.

    With `locks`, the logdir is locked first (LogdirBusy if another process holds it).
    """
    logdir = config.tensorboard.logdir
    renderer = Renderer(config)
    prepare = None
    if locks is not None:
        hold_logdir(locks, logdir)
        if rundirs.is_pattern(logdir):
            held = locks

            def prepare(directory: str) -> None:
                hold_directory(held, directory)

    ledger = open_ledger(logdir)
    finish_interrupted_relogs(logdir, ledger)
    in_flight = reconcile(ledger, logdir)
    return Processor(renderer, EventSink(logdir, prepare=prepare), ledger, in_flight)


def close_processor(processor: Processor, *, keep_ledger: bool = True) -> None:
    """Close the event files and fold the ledger's journal; `keep_ledger=False` when the logdir is gone: the
    old ledger must not be written into whatever now stands at its path."""
    try:
        processor.sink.close()
    finally:
        if keep_ledger:
            processor.ledger.close()


def run_once(config: Config, *, runs: Collection[str] | None = None, locks: Locks | None = None) -> Tally:
    """Log every complete artifact not yet logged, in epoch order per run, then return what happened.

    `runs` limits the pass to those runs; `locks`, if given, already hold the logdir (relog). Raises
    ConfigError if the root is missing, SinkError if the output is broken; everything written before that is
    committed.
    """
    root = Path(config.watch.root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise ConfigError(f"watch.root: {root} {what}; nothing to log (check the path, or create it)")
    coverage = Coverage(ignored=fixed_relative(config))
    artifacts, pending = discover(config, coverage)
    if runs is not None:
        artifacts = [artifact for artifact in artifacts if artifact.run in runs]
        pending = [waiting for waiting in pending if waiting.run in runs]
    tally = Tally(incomplete=len(pending), nothing_matched=coverage.problem(str(root)))
    if tally.nothing_matched:
        log.error("%s", tally.nothing_matched)
    elif coverage.matched == 0:
        log.warning("no dump files under watch.root %s yet; nothing to log", root)
    for waiting in pending:
        log.info(
            "run=%s epoch=%d incomplete: missing %s",
            waiting.run or ".",
            waiting.epoch,
            ", ".join(waiting.missing),
        )
    with contextlib.ExitStack() as stack:
        held = locks if locks is not None else stack.enter_context(holding("once"))
        processor = open_processor(config, held)
        attach_retention(config, processor)
        try:
            _process_all(processor, artifacts, tally)
        finally:
            close_processor(processor)
    return tally


def _process_all(processor: Processor, artifacts: list[Artifact], tally: Tally) -> None:
    for artifact in artifacts:
        result = processor.process(artifact)
        tally.outcomes[result.outcome] += 1
        if result.outcome is Outcome.LATE:
            log.warning("run=%s epoch=%d skipped: %s", artifact.run or ".", artifact.epoch, result.reason)
        elif result.outcome is Outcome.NOT_READY:
            log.info("run=%s epoch=%d not ready: %s", artifact.run or ".", artifact.epoch, result.reason)
        elif result.outcome is Outcome.WAITING:
            log.warning(
                "run=%s epoch=%d waiting: %s (not set aside: the next pass retries it)",
                artifact.run or ".",
                artifact.epoch,
                result.reason,
            )


class Daemon:
    """`segwatch run`: catch up, then follow the dump root until stopped.

    Threads: the observer only enqueues hints (detection never waits for processing); this loop drains them,
    decides what is ready and processes it, one artifact at a time, in (run, epoch) order.
    """

    def __init__(
        self,
        config: Config,
        *,
        stop: threading.Event,
        reload: threading.Event | None = None,
        config_path: Path | None = None,
        health: Health | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.health = health or Health(stale_after=config.http.stale_after)
        self.notifier = notifier or Notifier(None)
        self.config_path = config_path
        self.stop = stop
        self.reload = reload or threading.Event()
        self.wake = threading.Event()
        self.hints: queue.Queue[str] = queue.Queue(maxsize=config.service.queue_size)
        self.rescan_reason: str | None = "start-up scan"
        self.caught_up = threading.Event()
        # run -> (epoch, when); when is None for an epoch logged before this process started.
        self.last_logged: dict[str, tuple[int, float | None]] = {}
        self.output_failing_since: float | None = None
        self.output_problem = ""
        self._finished: dict[tuple[str, int], Outcome] = {}
        self.coverage = Coverage()
        self._retry_delay = config.service.retry_backoff[0]
        self._output_blocked_until = 0.0
        # Held for the daemon's lifetime, across reloads; released when `run` returns.
        self.locks = Locks("run")
        # Set when the logdir vanished under us: serve again, the ledger rebuilt from what is on disk.
        self._restart: str | None = None
        self.retention: Retention | None = None

    # --- hints from the observer thread -------------------------------------------------------------
    def _on_change(self, relative: str) -> None:
        try:
            self.hints.put_nowait(relative)
        except queue.Full:
            self._on_rescan_needed("hint queue full")
        self.wake.set()

    def _on_rescan_needed(self, reason: str) -> None:
        self.rescan_reason = reason
        self.wake.set()

    # --- the loop ------------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until stopped. Raises LogdirBusy if another process holds (or takes) the logdir."""
        try:
            while True:
                self._serve(self.config)
                if self.stop.is_set():
                    return
                if self._restart is not None:
                    self._restart = None
                    continue
                if not self.reload.is_set():
                    return
                self.reload.clear()
                self.notifier.reloading()
                self.config = self._reloaded_config()
        finally:
            self.locks.release()

    def _reloaded_config(self) -> Config:
        """The new config if it loads and every part of a session accepts it; else the running one.

        Everything is caught: a config the models accept but a constructor refuses (a palette, a layout) must
        not end a daemon whose contract is "reported, old config kept".
        """
        from segwatch.config import load_config

        if self.config_path is None:
            return self.config
        try:
            config = load_config(self.config_path)
            Renderer(config)
            config.dump_layout()
        except Exception as exc:
            # One line, clipped: a config error lists its problems on lines of their own.
            text = describe_exception(exc, limit=1000)
            if not isinstance(exc, SegwatchError):
                text = f"{type(exc).__name__}: {text}"
            log.error("reload: keeping the running config; the new one is invalid: %s", text)
            return self.config
        log.info("reload: config %s loaded", self.config_path)
        return config

    def _serve(self, config: Config) -> None:
        """Follow the root with one configuration until stopped or asked to reload."""
        from segwatch.intake.observers import choose_observer
        from segwatch.intake.watcher import Watcher

        root = Path(config.watch.root)
        layout = config.dump_layout()
        readiness = Readiness(
            config.required_roles,
            settle=config.watch.settle,
            incomplete_timeout=config.watch.incomplete_timeout,
            fixed_files=config.fixed_files,
            max_file_bytes=config.limits.max_file_bytes,
            max_pixels=config.limits.max_pixels,
            layout=layout,
            root=root,
        )
        processor = open_processor(config, self.locks)
        self.retention = attach_retention(config, processor, on_removed=self.health.record_removed)
        # After a restart, "last logged" starts from the ledger, not from "none yet".
        for run, record in processor.ledger.runs.items():
            if record.last_epoch is not None and run not in self.last_logged:
                self.last_logged[run] = (record.last_epoch, None)
        kind, reason = choose_observer(root, config.watch.observer)
        # The watcher says "watching <root>" once it is; this line says why this observer.
        log.info("%s observer chosen: %s", kind, reason)
        watcher = Watcher(
            root,
            kind=kind,
            poll_interval=config.watch.poll_interval,
            on_change=self._on_change,
            on_rescan_needed=self._on_rescan_needed,
        )
        self._finished.clear()
        self.rescan_reason = "start-up scan"
        watcher.start()
        # A disabled period (0) has no deadline: infinity, so the loop sleeps instead of spinning.
        next_rescan = _deadline(config.watch.rescan_interval)
        next_status = _deadline(config.service.status_interval)
        next_logdir_check = time.monotonic() + LOGDIR_CHECK_INTERVAL
        announced = False
        try:
            while not self.stop.is_set() and not self.reload.is_set():
                now = time.monotonic()
                if now >= next_logdir_check:
                    next_logdir_check = now + LOGDIR_CHECK_INTERVAL
                    gone = logdir_replaced(self.locks)
                    if gone:
                        log.warning(
                            "logdir %s was deleted or replaced under the daemon; rebuilding the ledger from "
                            "what is on disk and logging again what is missing there",
                            ", ".join(gone),
                        )
                        for directory in gone:
                            self.locks.forget(directory)
                        self._restart = "logdir replaced"
                        break
                    processor.sink.close_idle(WRITER_IDLE_CLOSE)
                if now >= next_rescan:
                    self.rescan_reason = self.rescan_reason or "periodic rescan"
                    next_rescan = _deadline(config.watch.rescan_interval)
                if self.rescan_reason is not None:
                    self._rescan(root, layout, readiness, processor)
                self._drain_hints(root, layout, readiness, processor)
                self._process_ready(readiness, processor)
                if not self.caught_up.is_set() and not readiness.due_within(config.watch.settle):
                    self.caught_up.set()
                    log.info("caught up: %s", self.status(readiness))
                if not announced and self.caught_up.is_set():
                    announced = True
                    self.health.mark_ready()
                    self.notifier.ready(self._status_line(readiness))
                self._report(readiness)
                if time.monotonic() >= next_status:
                    log.info("status: %s", self.status(readiness))
                    next_status = _deadline(config.service.status_interval)
                self._sleep(readiness, next_rescan, next_status)
        finally:
            if self.stop.is_set():
                self.notifier.stopping()
                self.health.mark_stopping()
            watcher.stop()
            close_processor(processor, keep_ledger=self._restart is None)

    def _rescan(self, root: Path, layout: DumpLayout, readiness: Readiness, processor: Processor) -> None:
        reason, self.rescan_reason = self.rescan_reason, None
        started = time.monotonic()
        count = 0
        first = reason == "start-up scan"
        was_unmatched = self.coverage.nothing_matched
        self.coverage = Coverage(ignored=fixed_relative(self.config))
        for relative in scan_tree(root):
            count += self._note(relative, root, layout, readiness, processor, changed=first, counting=True)
        log.debug("%s: %d relevant files in %.0f ms", reason, count, (time.monotonic() - started) * 1000)
        self._coverage_changed(root, was_unmatched)

    def _coverage_changed(self, root: Path, was_unmatched: bool) -> None:
        problem = self.coverage.problem(str(root))
        self.health.set_unmatched(self.coverage.unmatched, problem)
        if problem and not was_unmatched:
            log.warning("%s", problem)
        elif was_unmatched and not problem:
            log.info("dump files under watch.root %s match the patterns now", root)

    def _drain_hints(
        self, root: Path, layout: DumpLayout, readiness: Readiness, processor: Processor
    ) -> None:
        while True:
            try:
                relative = self.hints.get_nowait()
            except queue.Empty:
                return
            was_unmatched = self.coverage.nothing_matched
            self._note(relative, root, layout, readiness, processor, changed=True)
            if was_unmatched and not self.coverage.nothing_matched:
                self._coverage_changed(root, was_unmatched)

    def _note(
        self,
        relative: str,
        root: Path,
        layout: DumpLayout,
        readiness: Readiness,
        processor: Processor,
        *,
        changed: bool = False,
        counting: bool = False,
    ) -> int:
        """Hand a file to readiness unless its epoch is finished. `changed` (a live event, or the first scan):
        a recently logged epoch is looked at again once settled, so that a re-dump of it is reported."""
        noted = 0
        keys = layout.keys(relative)
        # Hints between rescans only count matches (a hint may repeat a file); each rescan counts afresh.
        if keys:
            self.coverage.matched += 1
        elif counting:
            self.coverage.note(relative, matched=False)
        for key in keys:
            if not readiness.wants(key):
                continue
            recheck = changed and processor.ledger.done_fingerprint(key.run, key.epoch) is not None
            finished = self._finished.get((key.run, key.epoch))
            if finished is not None and finished is not Outcome.SET_ASIDE and not recheck:
                continue
            if processor.ledger.is_done(key.run, key.epoch) and not recheck:
                continue
            readiness.note(key, str(root / relative))
            noted = 1
        return noted

    def _process_ready(self, readiness: Readiness, processor: Processor) -> None:
        if time.monotonic() < self._output_blocked_until:
            return
        ready = readiness.ready()
        for index, artifact in enumerate(ready):
            if self.stop.is_set() or self.reload.is_set():
                return
            started = time.perf_counter()
            try:
                result = processor.process(artifact)
            except SinkError as exc:
                self._output_failed(exc, ready[index:], readiness)
                return
            self.health.record(artifact.run, artifact.epoch, result.outcome, time.perf_counter() - started)
            if result.redumped:
                self.health.record_redump()
            self.notifier.keepalive()
            self._output_recovered()
            key = (artifact.run, artifact.epoch)
            if result.outcome is Outcome.NOT_READY:
                readiness.retry_at(artifact.run, artifact.epoch, time.monotonic() + readiness.settle)
                continue
            if result.outcome is Outcome.WAITING:
                readiness.wait(artifact.run, artifact.epoch, result.reason)
                continue
            readiness.forget(*key)
            if key not in self._finished and result.outcome is Outcome.LATE:
                log.warning(
                    "run=%s epoch=%d skipped: %s (TensorBoard would drop every later step)",
                    artifact.run or ".",
                    artifact.epoch,
                    result.reason,
                )
            self._finished[key] = result.outcome
            if result.outcome is Outcome.LOGGED:
                self.last_logged[artifact.run] = (artifact.epoch, time.time())

    def _output_failed(self, exc: SinkError, unprocessed: list[Artifact], readiness: Readiness) -> None:
        """Back off; the failed artifact and those handed out after it are looked at again after the wait."""
        artifact = unprocessed[0]
        now = time.monotonic()
        if self.output_failing_since is None:
            self.output_failing_since = time.time()
        self.output_problem = str(exc)
        self.health.set_output_failing(True, str(exc))
        log.error(
            "run=%s epoch=%d pending, output failing (retry in %.1f s): %s",
            artifact.run or ".",
            artifact.epoch,
            self._retry_delay,
            exc,
        )
        self._output_blocked_until = now + self._retry_delay
        # Readiness hands an artifact out once; one not processed now would never be looked at again.
        for waiting in unprocessed:
            readiness.retry_at(waiting.run, waiting.epoch, self._output_blocked_until)
        self._retry_delay = min(self._retry_delay * 2, self.config.service.retry_backoff[1])

    def _output_recovered(self) -> None:
        if self.output_failing_since is not None:
            log.info("output writable again after %.0f s", time.time() - self.output_failing_since)
            self.health.set_output_failing(False)
        self.output_failing_since = None
        self.output_problem = ""
        self._retry_delay = self.config.service.retry_backoff[0]

    def _sleep(self, readiness: Readiness, next_rescan: float, next_status: float) -> None:
        deadlines = [next_rescan, next_status, self._output_blocked_until]
        soonest = readiness.next_deadline()
        if soonest is not None:
            deadlines.append(soonest)
        now = time.monotonic()
        # What is already due was handled this time round; only future deadlines shorten the sleep. Bounded
        # so a stop or reload request is seen promptly even if nothing wakes us.
        timeout = min([d - now for d in deadlines if d > now], default=IDLE_WAKE)
        if soonest is not None and soonest <= now:
            # An epoch came due while this round ran: look again soon, but never spin.
            timeout = min(timeout, DUE_RECHECK)
        self.wake.wait(min(timeout, IDLE_WAKE))
        self.wake.clear()

    def _report(self, readiness: Readiness) -> None:
        """Once per loop: the loop is alive (health, watchdog) and what it is doing (status)."""
        self.health.tick(backlog=len(readiness))
        self.notifier.keepalive()
        self.notifier.status(self._status_line(readiness))

    def _status_line(self, readiness: Readiness) -> str:
        line = (
            status_line(
                len(readiness), self.last_logged, output_failing=self.output_failing_since is not None
            )
            + (f": {self.output_problem}" if self.output_problem else "")
            + self._unmatched()
        )
        return (
            line if self.retention is None else f"{line}; removed {self.retention.removed_files} dump files"
        )

    def status(self, readiness: Readiness) -> str:
        now = time.time()
        runs = ", ".join(
            f"{run or '.'}@{epoch} ({'before start-up' if when is None else f'{now - when:.0f} s ago'})"
            for run, (epoch, when) in sorted(self.last_logged.items())
        )
        failing = (
            ""
            if self.output_failing_since is None
            else f"; output failing for {now - self.output_failing_since:.0f} s"
        )
        removed = (
            ""
            if self.retention is None
            else f"; removed {self.retention.removed_files} dump files ({self.retention.removed_bytes} bytes)"
        )
        return (
            f"backlog {len(readiness)} epochs; last logged: {runs or 'none yet'}{failing}{removed}"
            + self._unmatched()
        )

    def _unmatched(self) -> str:
        problem = self.coverage.problem(str(self.config.watch.root))
        return f"; {problem}" if problem else ""


def _deadline(period: float) -> float:
    return time.monotonic() + period if period > 0 else float("inf")


def run_daemon(
    config: Config,
    config_path: Path | None = None,
    *,
    stop: threading.Event | None = None,
    reload: threading.Event | None = None,
    grace: Grace | None = None,
) -> None:
    """`segwatch run`: follow until SIGTERM/SIGINT; SIGHUP reloads `config_path`.

    The command line passes the events its early signal handlers set (see `signals.hold_early`).
    Raises LogdirBusy if another process holds the logdir.
    """
    stop = stop or threading.Event()
    reload = reload or threading.Event()
    grace = grace or Grace()
    grace.seconds = config.service.shutdown_grace
    health = Health(stale_after=config.http.stale_after)
    notifier = Notifier.from_env()
    daemon = Daemon(
        config, stop=stop, reload=reload, config_path=config_path, health=health, notifier=notifier
    )
    # The endpoint keeps the start-up config's http section: changing it takes a restart, not a reload.
    with serve_health(health, config.http), capture_signals(stop, reload, grace):
        daemon.run()
    notifier.close()
    log.info("stopped")
