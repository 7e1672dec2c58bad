"""Signal handling for `segwatch run`: handlers only set events, and they are in place before anything slow.

Importing TensorFlow and loading the config take seconds; a SIGHUP (a `systemctl reload` racing the start) or a
SIGTERM in that window must not kill the process with the default action. `early.hold_early` is the first thing
the process does (entry.py, for SIGHUP) and the command line does for `run` (SIGTERM, SIGINT too): it records
those signals until `capture_signals` takes over and replays them.
Only the standard library is imported here, so installing the handlers costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from segwatch.service.early import hold_early, is_early_handler, release_early, take_early

__all__ = ["EXIT_ABANDONED", "Grace", "capture_signals", "hold_early", "release_early"]

log = logging.getLogger(__name__)

# Exit status when the grace period runs out or a second signal arrives: the supervisor may restart us.
EXIT_ABANDONED = 1


class Grace:
    """The shutdown grace, known only once the config is loaded; `seconds` may be changed while running."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds


@contextlib.contextmanager
def capture_signals(stop: threading.Event, reload: threading.Event, grace: float | Grace) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop`, SIGHUP sets `reload`; the handlers do nothing else.

    A second stop signal, or the grace period running out after the first, ends the process at once: the
    artifact in hand is abandoned uncommitted, and the restart's recovery finishes it exactly once. Signals
    that arrived since `hold_early` are acted on as if they came now.
    """
    limit = grace if isinstance(grace, Grace) else Grace(grace)

    def force_exit() -> None:
        log.warning("shutdown grace of %.1f s exceeded; abandoning the artifact in hand", limit.seconds)
        logging.shutdown()
        os._exit(EXIT_ABANDONED)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(EXIT_ABANDONED)
        stop.set()
        timer = threading.Timer(limit.seconds, force_exit)
        timer.daemon = True
        timer.start()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        reload.set()

    handlers: dict[int, Callable[[int, FrameType | None], None]] = {
        signal.SIGTERM: on_stop,
        signal.SIGINT: on_stop,
        signal.SIGHUP: on_reload,
    }
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    for signum in sorted(take_early()):
        handlers[signum](signum, None)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # The early recorder is no handler to go back to: after the block the defaults apply again.
            signal.signal(signum, signal.SIG_DFL if is_early_handler(handler) else handler)
