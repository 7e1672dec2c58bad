"""Progress fanned out: each thing the daemon reports goes to the log, the health endpoints and the service
manager (sd_notify) from one place, and every status they show is written from one `Status`.

The session says what happened (an artifact handled, the output failing, a scan's coverage, a round done); the
reporter decides who hears it. It lives as long as the process, across reloads: counters, the last logged
epochs and "caught up" are the daemon's, not one configuration's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from segwatch.errors import Outcome, Result
from segwatch.intake.layout import Artifact
from segwatch.service.health import Health
from segwatch.service.notify import Notifier
from segwatch.service.status import Status
from segwatch.units import run_label

__all__ = ["Reporter"]

log = logging.getLogger(__name__)


def deadline(period: float, clock: Callable[[], float] = time.monotonic) -> float:
    """`period` seconds from now; a disabled period (0) has none: infinity, so a loop sleeps, never spins."""
    return clock() + period if period > 0 else float("inf")


class Reporter:
    def __init__(
        self,
        health: Health,
        notifier: Notifier,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.health = health
        self.notifier = notifier
        self.status = Status()
        self.caught_up = False
        self._clock = clock
        self._wall_clock = wall_clock
        self._announced = False
        self._status_interval = 0.0
        self.next_status = float("inf")

    # --- a session starts and ends -------------------------------------------------------------------
    def session_started(
        self, *, status_interval: float, retention: bool, last_epochs: Mapping[str, int]
    ) -> None:
        """A configuration is in use (at start-up, after a reload or a restart): READY=1 follows once it is
        caught up. After a restart, "last logged" starts from the ledger, not from "none yet"."""
        self._announced = False
        self._status_interval = status_interval
        self.next_status = deadline(status_interval, self._clock)
        if retention and self.status.removed is None:
            self.status.removed = (0, 0)
        elif not retention:
            self.status.removed = None
        for run, epoch in last_epochs.items():
            if run not in self.status.last_logged:
                self.status.logged(run, epoch, None)

    def reloading(self) -> None:
        self.notifier.reloading()

    def stopping(self) -> None:
        self.notifier.stopping()
        self.health.mark_stopping()

    # --- what happened ---------------------------------------------------------------------------------
    def handled(self, artifact: Artifact, result: Result, seconds: float, *, first: bool) -> None:
        """One artifact processed; `first` when this session had not finished it before (a late epoch is
        reported once)."""
        self.health.record(artifact.run, artifact.epoch, result.outcome, seconds)
        if result.redumped:
            self.health.record_redump()
        self.notifier.keepalive()
        self.output_recovered()
        if result.outcome is Outcome.LATE and first:
            log.warning(
                "run=%s epoch=%d skipped: %s (TensorBoard would drop every later step)",
                run_label(artifact.run),
                artifact.epoch,
                result.reason,
            )
        elif result.outcome is Outcome.LOGGED:
            self.status.logged(artifact.run, artifact.epoch, self._wall_clock())

    def output_failed(self, artifact: Artifact, problem: str, retry_in: float) -> None:
        if self.status.output_failing_since is None:
            self.status.output_failing_since = self._wall_clock()
        self.status.output_problem = problem
        self.health.set_output_failing(True, problem)
        log.error(
            "run=%s epoch=%d pending, output failing (retry in %.1f s): %s",
            run_label(artifact.run),
            artifact.epoch,
            retry_in,
            problem,
        )

    def output_recovered(self) -> None:
        since = self.status.output_failing_since
        if since is not None:
            log.info("output writable again after %.0f s", self._wall_clock() - since)
            self.health.set_output_failing(False)
        self.status.output_failing_since = None
        self.status.output_problem = ""

    def coverage(self, root: str, unmatched: int, problem: str) -> None:
        """A scan's verdict on the patterns: `problem` while no pattern matches any of `unmatched` dump files."""
        self.health.set_unmatched(unmatched, problem)
        if problem and not self.status.unmatched:
            log.warning("%s", problem)
        elif self.status.unmatched and not problem:
            log.info("dump files under watch.root %s match the patterns now", root)
        self.status.unmatched = problem

    def removed(self, run: str, epoch: int, files: int, size: int) -> None:
        """watch.retention removed `files` dump files (`size` bytes) of a logged epoch."""
        self.health.record_removed(run, epoch, files, size)
        count, total = self.status.removed or (0, 0)
        self.status.removed = (count + files, total + size)

    def round_done(self, backlog: int, *, settled: bool) -> None:
        """Once per loop: the loop is alive (health, watchdog) and what it is doing (status). `settled`: nothing
        under the root comes due within the settle time, so the start-up catch-up is over."""
        self.status.backlog = backlog
        if settled and not self.caught_up:
            self.caught_up = True
            log.info("caught up: %s", self.status.detail(self._wall_clock()))
        if self.caught_up and not self._announced:
            self._announced = True
            self.health.mark_ready()
            self.notifier.ready(self.status.summary())
        self.health.tick(backlog=backlog)
        self.notifier.keepalive()
        self.notifier.status(self.status.summary())
        if self._clock() >= self.next_status:
            log.info("status: %s", self.status.detail(self._wall_clock()))
            self.next_status = deadline(self._status_interval, self._clock)
