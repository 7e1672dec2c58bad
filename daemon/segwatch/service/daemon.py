"""`segwatch run`: catch up, then follow the dump root until stopped; SIGHUP reloads the config.

The daemon is a loop over sessions (`session.py`: one configuration at work) that calls the session's `tick`
and sleeps in between. A reload or a logdir replaced under it starts a new session; the logdir lock and the
`Reporter` (log, health, sd_notify) outlive them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from segwatch.errors import SegwatchError
from segwatch.output.lock import Locks
from segwatch.service.endpoint import serve_health
from segwatch.service.health import Health
from segwatch.service.notify import Notifier
from segwatch.service.processor import describe_exception
from segwatch.service.reporter import Reporter
from segwatch.service.session import Session
from segwatch.service.signals import Grace, capture_signals

if TYPE_CHECKING:
    from segwatch.config import Config

__all__ = ["Daemon", "run_daemon"]

log = logging.getLogger(__name__)


class Daemon:
    """Serves sessions until stopped. `stop` and `reload` are set by the signal handlers."""

    def __init__(
        self,
        config: Config,
        *,
        stop: threading.Event,
        reload: threading.Event | None = None,
        config_path: Path | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.config = config
        self.stop = stop
        self.reload = reload or threading.Event()
        self.config_path = config_path
        self.reporter = reporter or Reporter(Health(stale_after=config.http.stale_after), Notifier(None))
        # Held for the daemon's lifetime, across reloads; released when `run` returns.
        self.locks = Locks("run")

    def interrupted(self) -> bool:
        return self.stop.is_set() or self.reload.is_set()

    def run(self) -> None:
        """Serve until stopped. Raises LogdirBusy if another process holds (or takes) the logdir."""
        try:
            session = self._session(self.config)
            while True:
                self._serve(session)
                if self.stop.is_set():
                    return
                if session.restart is not None:
                    session = self._session(session.config)
                    continue
                if not self.reload.is_set():
                    return
                self.reload.clear()
                self.reporter.reloading()
                session = self._reloaded(session.config)
        finally:
            self.locks.release()

    def _session(self, config: Config) -> Session:
        return Session(config, locks=self.locks, reporter=self.reporter, interrupted=self.interrupted)

    def _serve(self, session: Session) -> None:
        """Follow the root with one session until stopped, asked to reload, or its logdir is gone."""
        try:
            session.start()
            while not self.interrupted() and session.tick():
                session.pause()
        finally:
            if self.stop.is_set():
                self.reporter.stopping()
            session.close()

    def _reloaded(self, running: Config) -> Session:
        """A session of the new config if it loads and a session accepts it; else one of the running config.

        Everything is caught: a config the models accept but a constructor refuses (a palette, a layout) must
        not end a daemon whose contract is "reported, old config kept".
        """
        from segwatch.config.loading import load_config

        if self.config_path is None:
            return self._session(running)
        try:
            session = self._session(load_config(self.config_path))
        except Exception as exc:
            # One line, clipped: a config error lists its problems on lines of their own.
            text = describe_exception(exc, limit=1000)
            if not isinstance(exc, SegwatchError):
                text = f"{type(exc).__name__}: {text}"
            log.error("reload: keeping the running config; the new one is invalid: %s", text)
            return self._session(running)
        log.info("reload: config %s loaded", self.config_path)
        return session


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
        config, stop=stop, reload=reload, config_path=config_path, reporter=Reporter(health, notifier)
    )
    # The endpoint keeps the start-up config's http section: changing it takes a restart, not a reload.
    with serve_health(health, config.http), capture_signals(stop, reload, grace):
        daemon.run()
    notifier.close()
    log.info("stopped")
