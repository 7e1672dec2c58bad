"""Command line: subcommands, logging set-up and exit codes. The only place that configures logging or exits.

Exit codes: 0 all good, 1 some artifact failed or the output broke, 2 bad configuration or usage, 3 the logdir
is held by another segwatch (which the one line on stderr names: pid, host, since).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from segwatch import __version__
from segwatch.errors import ConfigError, SinkError
from segwatch.output.lock import LogdirBusy
from segwatch.tfquiet import import_tensorflow, quiet_environment
from segwatch.units import parse_run_label

if TYPE_CHECKING:
    from segwatch.config import Config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
CONFIG_ENV = "SEGWATCH_CONFIG"

log = logging.getLogger("segwatch")


# Characters that end a line for some reader (str.splitlines, editors, terminals), and other controls.
_LINE_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with line breaks and control characters escaped, so that one event stays one log line even when
    a file or run name holds a newline."""
    return _LINE_BREAKING.sub(lambda match: ascii(match.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """The plain format, one line per event; a traceback, when there is one, follows on lines of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # Our own messages at the chosen level; TensorFlow's and others' only when they matter.
    logging.getLogger("segwatch").setLevel(level.upper())
    quiet_environment()
    if fmt == "json":
        # An unexpected traceback too is one JSON object (its text in "exception"), not twenty raw lines.
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda hook: _log_uncaught(
            hook.exc_type, hook.exc_value or hook.exc_type(), hook.exc_traceback
        )
    # Python warnings become log records: in JSON mode every stderr line must be one object.
    logging.captureWarnings(True)
    # watchdog warns when a directory renamed into place is scheduled twice; harmless, and not the user's concern.
    warnings.filterwarnings("ignore", message="Callback with id .* already exists", category=RuntimeWarning)


def _log_uncaught(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
    log.critical("unexpected error: %s", value, exc_info=(kind, value, trace))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segwatch", description="Watch segmentation training dumps and log them to TensorBoard."
    )
    parser.add_argument("--version", action="version", version=f"segwatch {__version__}")
    _add_global_flags(parser, defaults=True)
    # The same flags after the subcommand: `segwatch once --log-format json` works like the other order.
    common = argparse.ArgumentParser(add_help=False)
    _add_global_flags(common, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[common], help="catch up, then follow the dump root until SIGTERM"
    )
    run.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV})")

    once = commands.add_parser(
        "once", parents=[common], help="log every complete epoch not yet logged, then exit"
    )
    once.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV})")

    explain = commands.add_parser(
        "explain",
        parents=[common],
        help="say what each dump path maps to (or why nothing) and where each epoch stands",
    )
    explain.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV})")
    explain.add_argument(
        "paths", nargs="*", metavar="PATH", help="paths to explain (default: all under the root)"
    )

    relog = commands.add_parser(
        "relog",
        parents=[common],
        help="log the whole history of runs again with the current config (old event files are moved aside)",
    )
    relog.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV})")
    relog.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="NAME",
        help="a run to relog (repeatable; '.' is the unnamed run of a flat dump); default: every run",
    )

    check = commands.add_parser(
        "check-config", parents=[common], help="validate a config file and print the effective config"
    )
    check.add_argument("--config", dest="config_option", help=f"YAML config file (default: ${CONFIG_ENV})")
    check.add_argument("config", nargs="?", help="the config file, as an alternative to --config")

    demo = commands.add_parser(
        "demo", parents=[common], help="write a synthetic dump, log it, and print how to view it"
    )
    demo.add_argument("--logdir", default="tb", help="TensorBoard logdir to write (default: ./tb)")
    demo.add_argument(
        "--dumps", default="segwatch-demo", help="where to write the dump (default: ./segwatch-demo)"
    )
    demo.add_argument(
        "--live",
        action="store_true",
        help="play a training job writing an epoch a second while a real `segwatch run` daemon follows it",
    )
    return parser


def _add_global_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # After the subcommand, a flag not given must not reset what was given before it.
    parser.add_argument(
        "--log-level",
        default="info" if defaults else argparse.SUPPRESS,
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument(
        "--log-format", default="text" if defaults else argparse.SUPPRESS, choices=["text", "json"]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits by itself on --help and usage errors
        return int(exc.code or 0)
    from segwatch.service.signals import hold_early, release_early

    if args.command == "run":
        # Before anything slow (the config, TensorFlow): a SIGHUP or SIGTERM now must not kill the process.
        hold_early()
    else:
        release_early()
    configure_logging(args.log_level, args.log_format)
    try:
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "once":
            return _once(args)
        if args.command == "run":
            return _run(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "relog":
            return _relog(args)
        if args.command == "demo":
            return _demo(args)
    except ConfigError as exc:
        # One record per problem: a config with three mistakes gives three lines, not one with "\n" in it.
        for line in str(exc).splitlines():
            log.error("%s", line)
        return EXIT_USAGE
    except LogdirBusy as exc:
        log.error("%s", exc)
        return EXIT_LOCKED
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


def _config_path(given: str | None) -> Path:
    path = given or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"no config file: pass --config FILE or set {CONFIG_ENV}")
    return Path(path)


def _load_then_import_tensorflow(path: Path) -> Config:
    """The config (a bad one fails fast), then TensorFlow if the config needs it, imported before anything
    else imports it so that its C++ start-up lines never reach stderr. Only a URL logdir (gs://, s3://, ...)
    needs it, for its file systems; a local logdir is written without TensorFlow, which then is not loaded at
    all (its import takes seconds and some 400 MiB). A logdir that becomes a URL on SIGHUP imports it then,
    through the same quiet import."""
    from segwatch.config.loading import load_config
    from segwatch.output.storage import is_url

    config = load_config(path)
    if is_url(config.tensorboard.logdir):
        import_tensorflow()
    else:
        quiet_environment()
    return config


def _check_config(args: argparse.Namespace) -> int:
    from segwatch.config import load_config, render_config
    from segwatch.plan import build_plan

    if args.config and args.config_option and args.config != args.config_option:
        raise ConfigError(
            f"check-config: two config files given ({args.config_option} and {args.config}); pass one"
        )
    config = load_config(_config_path(args.config_option or args.config))
    # The daemon runs on the plan: building it here too makes check-config accept exactly what `run` does.
    build_plan(config)
    if not config.watch.root.is_dir():
        # Not a config error (`run` waits for the root to appear), but `once` would refuse it: say so now.
        log.warning(
            "watch.root: %s does not exist yet; `segwatch once` would exit 2 until it does", config.watch.root
        )
    print(render_config(config), end="")
    return EXIT_OK


def _once(args: argparse.Namespace) -> int:
    from segwatch.service.once import run_once

    config = _load_then_import_tensorflow(_config_path(args.config))
    try:
        tally = run_once(config)
    except SinkError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    print(tally.line())
    return EXIT_FAILED if tally.failed else EXIT_OK


def _relog(args: argparse.Namespace) -> int:
    from segwatch.relog import relogging
    from segwatch.service.once import run_once

    config = _load_then_import_tensorflow(_config_path(args.config))
    try:
        with relogging(config, [parse_run_label(run) for run in args.run]) as (locks, runs):
            tally = run_once(config, runs=set(runs), locks=locks)
    except SinkError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    print(tally.line())
    return EXIT_FAILED if tally.failed else EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from segwatch.config.loading import load_config
    from segwatch.explain import explain

    # explain reads names, headers and the ledger: no TensorFlow, so it answers in a moment.
    config = load_config(_config_path(args.config))
    for line in explain(config, args.paths):
        print(one_line(line))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from segwatch.service.daemon import run_daemon
    from segwatch.service.signals import Grace, capture_signals

    path = _config_path(args.config)
    stop, reload, grace = threading.Event(), threading.Event(), Grace()
    with capture_signals(stop, reload, grace):
        config = _load_then_import_tensorflow(path)
        run_daemon(config, config_path=path, stop=stop, reload=reload, grace=grace)
    return EXIT_OK


def _command(name: str) -> str:
    """How to start the console script `name` so that the line works as printed: the one installed beside
    this interpreter (a venv's bin/ need not be on PATH), else the one on PATH, else through the module."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return shlex.quote(str(beside))
    found = shutil.which(name)
    if found:
        return shlex.quote(found)
    return f"{shlex.quote(sys.executable)} -m {name}"


def _demo(args: argparse.Namespace) -> int:
    from segwatch import demo
    from segwatch.service.once import run_once

    dumps, logdir = Path(args.dumps), Path(args.logdir)
    config_path = dumps / "segwatch.yaml"
    demo.write_config(config_path, demo.demo_config(dumps / "dumps", logdir))
    if args.live:
        from segwatch.livedemo import follow_live

        (dumps / "dumps").mkdir(parents=True, exist_ok=True)
        import_tensorflow()
        written = follow_live(dumps / "dumps", logdir, config_path)
        print(f"{written} epochs written by the training job and logged by the daemon as they came")
        failed = False
    else:
        written = demo.write_dump(dumps / "dumps")
        log.info("wrote %d demo epochs under %s", written, dumps / "dumps")
        tally = run_once(_load_then_import_tensorflow(config_path))
        print(tally.line())
        failed = bool(tally.failed)
    print(
        "\nView it with:\n"
        f"  {_command('tensorboard')} --logdir {shlex.quote(str(logdir))} "
        "--samples_per_plugin images=1000 --host 127.0.0.1 --port 6006\n"
        "then open http://localhost:6006 (Time Series and Images tabs), or the segwatch viewer (masks over the "
        "images, class toggles, zoom, compare epochs):\n"
        "  http://localhost:6006/#segwatch_viewer\n"
        f"Follow the dump live with: {_command('segwatch')} run --config {shlex.quote(str(config_path))}"
    )
    return EXIT_FAILED if failed else EXIT_OK
