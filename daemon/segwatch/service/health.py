"""Health and metrics over HTTP: /healthz, /readyz, /idle and /metrics (Prometheus text format).

`Health` holds what the daemon loop reports and renders every endpoint to a `Response` of bytes; it has no
sockets and takes its clocks as parameters. `endpoint.HealthServer` only serves those responses, on a
background thread. The endpoint is off by default and binds 127.0.0.1 unless configured otherwise.

    /healthz   200 while the daemon loop has made progress within `stale_after`, else 503 (liveness)
    /readyz    200 once the start-up catch-up scan is done; 503 before it, while stopping, and while writing to
               the logdir fails (the reason in the body); a warning such as "no pattern matches the dump
               files" stays 200, with the warning in the body (readiness: is this instance doing its job?)
    /idle      200 once nothing is pending and nothing was logged for `quiet` seconds, waiting at most
               `wait` seconds for that (a pre-stop hook: let the last epochs through before SIGTERM)
    /metrics   Prometheus exposition of a per-daemon registry (OpenMetrics if the scraper asks for it)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from segwatch.errors import Outcome
from segwatch.units import parse_duration, run_label

__all__ = ["Health", "Response"]

TEXT = "text/plain; charset=utf-8"
# Rendering 10k-pixel batches takes seconds; these buckets tell a 50 ms epoch from a 2-minute one.
PROCESSING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# /idle waits at most this long however it is asked, so a hook can never pin a server thread for good.
MAX_IDLE_WAIT = 600.0


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes


def _text(status: HTTPStatus, line: str) -> Response:
    return Response(int(status), TEXT, (line + "\n").encode())


class _SinceLastLogged(Collector):
    """`segwatch_seconds_since_last_logged`, computed at scrape time from the wall clock."""

    def __init__(self, health: Health) -> None:
        self._health = health

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "segwatch_seconds_since_last_logged",
            "Seconds since the most recent epoch of any run was logged (absent until one is).",
        )
        age = self._health.seconds_since_last_logged()
        if age is not None:
            family.add_metric([], age)
        yield family


class Health:
    """What the daemon loop reports, for the endpoints. Every method is thread-safe and cheap.

    The loop calls `tick` each time round (and after each artifact), `mark_ready` after the start-up scan,
    `record` with each artifact's outcome, `set_output_failing` as the output breaks and recovers, and
    `mark_stopping` when a stop is requested.
    """

    def __init__(
        self,
        *,
        stale_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Counting from creation gives the loop `stale_after` to make its first tick.
        self._last_tick = clock()
        self._ready = False
        self._stopping = False
        self._backlog = 0
        self._last_busy = clock()
        self._last_logged_wall: float | None = None
        self._output_problem = ""
        self._warning = ""

        self.registry = CollectorRegistry(auto_describe=True)
        self._logged = Counter(
            "segwatch_epochs_logged", "Epochs written to TensorBoard and committed.", registry=self.registry
        )
        self._set_aside = Counter(
            "segwatch_epochs_set_aside",
            "Epochs set aside because their files are bad (reason in the log).",
            registry=self.registry,
        )
        self._skipped = Counter(
            "segwatch_epochs_skipped",
            "Epochs not written, by reason: late (older than a logged epoch of the run) or already_done.",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("late", "already_done"):
            self._skipped.labels(reason=reason)
        self._redumped = Counter(
            "segwatch_epochs_redumped",
            "Logged epochs whose files were dumped again afterwards (left as logged; the log says how to relog).",
            registry=self.registry,
        )
        self._backlog_gauge = Gauge(
            "segwatch_backlog_epochs",
            "Epochs seen on disk and not yet logged or set aside.",
            registry=self.registry,
        )
        self._processing = Histogram(
            "segwatch_processing_seconds",
            "Time to load, render, write and commit one logged epoch.",
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self._last_epoch = Gauge(
            "segwatch_last_logged_epoch", "The latest epoch logged, per run.", ["run"], registry=self.registry
        )
        self._last_logged_at = Gauge(
            "segwatch_last_logged_timestamp_seconds",
            "Unix time at which the latest epoch of a run was logged.",
            ["run"],
            registry=self.registry,
        )
        self._output_failing = Gauge(
            "segwatch_output_failing",
            "1 while writing to the logdir fails and epochs wait for a retry, else 0.",
            registry=self.registry,
        )
        self._unmatched_gauge = Gauge(
            "segwatch_unmatched_files",
            "Dump files (.npy/.npz) under the root that match no pattern, at the last full scan.",
            registry=self.registry,
        )
        self._ready_gauge = Gauge(
            "segwatch_ready", "1 once the start-up catch-up scan is done, else 0.", registry=self.registry
        )
        self._removed_files = Counter(
            "segwatch_dump_files_removed",
            "Dump files removed after their epoch was logged (watch.retention).",
            registry=self.registry,
        )
        self._removed_bytes = Counter(
            "segwatch_dump_bytes_removed",
            "Bytes of dump files removed after their epoch was logged (watch.retention).",
            registry=self.registry,
        )
        self.registry.register(_SinceLastLogged(self))

    # --- reports from the daemon loop -----------------------------------------------------------------
    def tick(self, backlog: int | None = None) -> None:
        """The loop made progress; `backlog` is the number of epochs pending, if known."""
        with self._changed:
            now = self._clock()
            self._last_tick = now
            if backlog is not None:
                self._backlog = backlog
                self._backlog_gauge.set(backlog)
                if backlog:
                    self._last_busy = now
            self._changed.notify_all()

    def mark_ready(self) -> None:
        with self._lock:
            self._ready = True
            self._stopping = False
            self._ready_gauge.set(1)

    def mark_stopping(self) -> None:
        with self._lock:
            self._stopping = True
            self._ready_gauge.set(0)

    def record_removed(self, run: str, epoch: int, files: int, size: int) -> None:
        """Dump retention removed `files` files (`size` bytes) of a logged epoch."""
        self._removed_files.inc(files)
        self._removed_bytes.inc(size)

    def record(self, run: str, epoch: int, outcome: Outcome, seconds: float) -> None:
        """One artifact handled: counts it by outcome; a logged one also times it and moves the run's gauges."""
        with self._changed:
            self._last_busy = self._clock()
            self._last_tick = self._last_busy
            if outcome is Outcome.LOGGED:
                wall = self._wall_clock()
                self._last_logged_wall = wall
                self._logged.inc()
                self._processing.observe(seconds)
                self._last_epoch.labels(run=run_label(run)).set(epoch)
                self._last_logged_at.labels(run=run_label(run)).set(wall)
            elif outcome is Outcome.SET_ASIDE:
                self._set_aside.inc()
            elif outcome is Outcome.LATE:
                self._skipped.labels(reason="late").inc()
            elif outcome is Outcome.DONE:
                self._skipped.labels(reason="already_done").inc()
            # NOT_READY is neither done nor failed: the epoch is looked at again and counted then.
            self._changed.notify_all()

    def record_redump(self) -> None:
        self._redumped.inc()

    def set_output_failing(self, failing: bool, reason: str = "") -> None:
        """The output broke (with the reason) or works again; /readyz fails meanwhile: a restart would not fix
        a read-only or full disk, so /healthz stays about the loop."""
        with self._lock:
            self._output_problem = (reason or "writing to the logdir fails") if failing else ""
        self._output_failing.set(1 if failing else 0)

    def set_unmatched(self, count: int, warning: str = "") -> None:
        """Unmatched dump files at the last scan, and the warning to show while nothing matches."""
        with self._lock:
            self._warning = warning
        self._unmatched_gauge.set(count)

    def seconds_since_last_logged(self) -> float | None:
        with self._lock:
            last = self._last_logged_wall
        return None if last is None else max(0.0, self._wall_clock() - last)

    # --- rendering ------------------------------------------------------------------------------------
    def healthz(self) -> Response:
        with self._lock:
            age = self._clock() - self._last_tick
        if age <= self.stale_after:
            return _text(HTTPStatus.OK, f"ok: the loop made progress {age:.1f} s ago")
        return _text(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"stale: the loop last made progress {age:.0f} s ago (limit {self.stale_after:g} s)",
        )

    def readyz(self) -> Response:
        with self._lock:
            ready, stopping = self._ready, self._stopping
            output_problem, warning = self._output_problem, self._warning
        if stopping:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, "stopping")
        if output_problem:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, f"output failing: {output_problem}")
        if ready:
            line = "ready: the start-up scan is done"
            return _text(HTTPStatus.OK, f"{line}; warning: {warning}" if warning else line)
        return _text(HTTPStatus.SERVICE_UNAVAILABLE, "starting: the start-up scan is not done yet")

    def idle(self, *, quiet: float = 2.0, wait: float = 0.0) -> Response:
        """200 once no epoch has been pending or handled for `quiet` seconds; waits up to `wait` for that."""
        deadline = self._clock() + min(max(wait, 0.0), MAX_IDLE_WAIT)
        with self._changed:
            while True:
                now = self._clock()
                quiet_for = now - self._last_busy
                if self._backlog == 0 and quiet_for >= quiet:
                    return _text(HTTPStatus.OK, f"idle: nothing pending for {quiet_for:.1f} s")
                if now >= deadline:
                    return _text(
                        HTTPStatus.SERVICE_UNAVAILABLE,
                        f"busy: {self._backlog} epochs pending, last activity {quiet_for:.1f} s ago",
                    )
                # Woken by every report; the bound covers the quiet period running out with no report at all.
                self._changed.wait(min(deadline - now, max(quiet - quiet_for, 0.05), 0.5))

    def metrics(self, accept: str = "") -> Response:
        encoder, content_type = choose_encoder(accept)
        return Response(int(HTTPStatus.OK), content_type, encoder(self.registry))

    def respond(self, target: str, accept: str = "") -> Response:
        """The response to a GET of `target` (path and query)."""
        url = urlsplit(target)
        if url.path == "/healthz":
            return self.healthz()
        if url.path == "/readyz":
            return self.readyz()
        if url.path == "/metrics":
            return self.metrics(accept)
        if url.path == "/idle":
            query = parse_qs(url.query)
            try:
                quiet = _query_seconds(query, "quiet", 2.0)
                wait = _query_seconds(query, "wait", 0.0)
            except ValueError as exc:
                return _text(HTTPStatus.BAD_REQUEST, str(exc))
            return self.idle(quiet=quiet, wait=wait)
        return _text(HTTPStatus.NOT_FOUND, f"no such endpoint {url.path!r}: try /healthz, /readyz, /metrics")


def _query_seconds(query: dict[str, list[str]], name: str, default: float) -> float:
    values = query.get(name)
    if not values:
        return default
    try:
        seconds = parse_duration(values[-1])
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name}: expected a duration >= 0, got {values[-1]!r}")
    return seconds
