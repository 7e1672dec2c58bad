"""Signals that arrive before the real handlers: recorded from the process's first moment, acted on later.

`systemctl reload` racing a start would otherwise kill the process with SIGHUP's default action while Python
is still importing. Only the C `_signal` module is imported here (even `logging` takes tens of milliseconds on a
loaded machine); `signals.capture_signals` replays what was recorded once its real handlers are installed.
"""

# The C module: `signal` itself imports enum, which costs more than the rest of this file.
import _signal  # type: ignore[import-not-found]

_early: set[int] = set()


def _remember(signum: int, frame: object) -> None:
    _early.add(signum)


def hold_early(*, hangup_only: bool = False) -> None:
    """Record SIGHUP (and SIGTERM and SIGINT) until `capture_signals` installs the real handlers."""
    hangup = (_signal.SIGHUP,)
    for signum in hangup if hangup_only else (*hangup, _signal.SIGTERM, _signal.SIGINT):
        _signal.signal(signum, _remember)


def release_early() -> None:
    """For commands that do not reload: SIGHUP's default action again, and forget what was recorded."""
    if _signal.getsignal(_signal.SIGHUP) is _remember:
        _signal.signal(_signal.SIGHUP, _signal.SIG_DFL)
    _early.clear()


def take_early() -> set[int]:
    """The signals recorded so far (forgotten here: the caller acts on them)."""
    early = set(_early)
    _early.clear()
    return early


def is_early_handler(handler: object) -> bool:
    return handler is _remember
