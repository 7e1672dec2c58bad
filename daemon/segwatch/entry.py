"""The process entry point (`segwatch` and `python -m segwatch`): a SIGHUP is caught from the first moment.

`systemctl reload` racing a start would otherwise kill the process with SIGHUP's default action while Python
is still importing. Only `signal` is imported before the handler is in place (even `logging` takes tens of
milliseconds on a loaded machine); the command line decides later what a recorded signal means: `run` acts on
it once its real handlers are installed (signals.capture_signals), other commands forget it.
"""

from segwatch.service.early import hold_early

hold_early(hangup_only=True)


def main() -> int:
    from segwatch.cli import main as cli_main

    return cli_main()
