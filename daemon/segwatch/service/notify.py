"""Telling a service manager how the daemon is doing: the sd_notify protocol, spoken directly.

A manager that wants to hear from us (systemd with `Type=notify`) puts the address of an AF_UNIX datagram
socket in $NOTIFY_SOCKET: a path, or an abstract-namespace name written with a leading "@". Each message is
one datagram of newline-separated KEY=VALUE assignments. Without $NOTIFY_SOCKET every call here is a no-op,
so the daemon can call them unconditionally.

The messages the daemon sends, in order:
    READY=1         once the start-up catch-up scan is done (start-up counts as finished from then on)
    STATUS=...      a one-line summary (backlog, last epochs; `status.Status.summary`) whenever it changes
    WATCHDOG=1      from the loop itself, each half of $WATCHDOG_USEC, so a stuck loop stops the pings
    RELOADING=1     when SIGHUP asks for a config reload, then READY=1 again once the new config is in use
    STOPPING=1      as soon as a stop is requested, before the artifact in hand is finished
Before READY=1, the same keep-alive calls send EXTEND_TIMEOUT_USEC instead of WATCHDOG=1: a catch-up over
a long backlog takes as long as it takes, and the start-up timeout should only fire if it stops progressing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "Notifier"]

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"

# How far each keep-alive pushes the start-up timeout while the catch-up is still making progress.
DEFAULT_START_EXTENSION = 60.0
# A manager that stops reading must not stall the daemon loop for long.
SEND_TIMEOUT = 1.0


def _address(value: str) -> str:
    # Python spells an abstract-namespace address with a leading NUL; the environment uses "@".
    return "\0" + value[1:] if value.startswith("@") else value


def watchdog_interval_from(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds within which the manager wants a WATCHDOG=1 from process `pid`, or None if it wants none.

    $WATCHDOG_PID, when set, names the one process the watchdog is meant for (a child that inherited the
    variables must not answer for its parent).
    """
    usec = environ.get(WATCHDOG_USEC, "").strip()
    owner = environ.get(WATCHDOG_PID, "").strip()
    if not usec:
        return None
    if owner and owner != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring %s=%r: expected a whole number of microseconds", WATCHDOG_USEC, usec)
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """Sends sd_notify messages to one socket address; does nothing when the address is None.

    Sending never raises: a manager that went away is logged once, and the daemon goes on. Thread-safe.
    """

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_interval: float | None = None,
        start_extension: float = DEFAULT_START_EXTENSION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address or None
        self.watchdog_interval = watchdog_interval if self.address else None
        self.start_extension = start_extension
        self._clock = clock
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._ready = False
        self._stopping = False
        self._last_status: str | None = None
        self._last_keepalive: float | None = None
        self._warned = False

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        start_extension: float = DEFAULT_START_EXTENSION,
        clock: Callable[[], float] = time.monotonic,
    ) -> Notifier:
        """A notifier for the manager named by $NOTIFY_SOCKET and $WATCHDOG_USEC (`os.environ` by default)."""
        env = os.environ if environ is None else environ
        return cls(
            env.get(NOTIFY_SOCKET, "").strip() or None,
            watchdog_interval=watchdog_interval_from(env, os.getpid() if pid is None else pid),
            start_extension=start_extension,
            clock=clock,
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    # --- the messages ---------------------------------------------------------------------------------
    def ready(self, status: str | None = None) -> None:
        """Start-up (or a reload) is done: READY=1, with a status line if given."""
        with self._lock:
            self._ready = True
            self._last_keepalive = self._clock()
        fields = ["READY=1"]
        if status is not None:
            fields.append(self._status_field(status))
        self.send(*fields)

    def reloading(self) -> None:
        """A config reload starts; READY=1 must follow once the new config is in use."""
        with self._lock:
            self._ready = False
            self._last_keepalive = None
        # systemd requires the monotonic timestamp with RELOADING=1 to tell this reload from older ones.
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def status(self, text: str) -> bool:
        """STATUS=text, sent only when it differs from the last one; returns whether it was sent."""
        with self._lock:
            if text == self._last_status:
                return False
        return self.send(self._status_field(text))

    def stopping(self) -> None:
        """A stop was requested: STOPPING=1. Keep-alives end here; the manager's stop timeout applies."""
        with self._lock:
            self._stopping = True
        self.send("STOPPING=1")

    # --- keep-alive pacing ----------------------------------------------------------------------------
    def keepalive_period(self) -> float | None:
        """How often keep-alives are due now: half the watchdog interval once ready (as sd_notify advises),
        half the start-up extension before that; None when nothing is expected."""
        if not self.enabled or self._stopping:
            return None
        if self._ready:
            return None if self.watchdog_interval is None else self.watchdog_interval / 2
        return self.start_extension / 2

    def keepalive_due_in(self) -> float | None:
        """Seconds until the next keep-alive is due (<= 0: due now), or None if none is expected."""
        period = self.keepalive_period()
        if period is None:
            return None
        last = self._last_keepalive
        return 0.0 if last is None else last + period - self._clock()

    def keepalive(self) -> bool:
        """Call from the loop each time it makes progress: sends a keep-alive if one is due.

        Once ready that is WATCHDOG=1; before, EXTEND_TIMEOUT_USEC, so a long catch-up that keeps progressing
        is not killed by the start-up timeout. Returns whether a message was sent.
        """
        due_in = self.keepalive_due_in()
        if due_in is None or due_in > 0:
            return False
        with self._lock:
            ready = self._ready
            self._last_keepalive = self._clock()
        if ready:
            return self.send("WATCHDOG=1")
        return self.send(f"EXTEND_TIMEOUT_USEC={round(self.start_extension * 1e6)}")

    # --- the wire -------------------------------------------------------------------------------------
    def send(self, *fields: str) -> bool:
        """One datagram of the given KEY=VALUE fields; returns whether it went out."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    self._socket.settimeout(SEND_TIMEOUT)
                self._socket.sendto(message, _address(self.address))
            except OSError as exc:
                if not self._warned:
                    log.warning("cannot notify the service manager at %s: %s", self.address, exc)
                    self._warned = True
                return False
            for field in fields:
                if field.startswith("STATUS="):
                    self._last_status = field[len("STATUS=") :]
            self._warned = False
        return True

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    @staticmethod
    def _status_field(text: str) -> str:
        # One message is newline-separated assignments, so a status must stay on one line.
        return "STATUS=" + text.replace("\n", " ")
