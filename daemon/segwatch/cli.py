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
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from segwatch import __version__
from segwatch.errors import ConfigError, SinkError
from segwatch.lock import LogdirBusy

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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # watchdog warns when a directory renamed into place is scheduled twice; harmless, and not the user's concern.
    warnings.filterwarnings("ignore", message="Callback with id .* already exists", category=RuntimeWarning)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segwatch", description="Watch segmentation training dumps and log them to TensorBoard."
    )
    parser.add_argument("--version", action="version", version=f"segwatch {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="catch up, then follow the dump root until SIGTERM")
    run.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV})")

    once = commands.add_parser("once", help="log every complete epoch not yet logged, then exit")
    once.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV})")

    explain = commands.add_parser(
        "explain", help="say what each dump path maps to (or why nothing) and where each epoch stands"
    )
    explain.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV})")
    explain.add_argument(
        "paths", nargs="*", metavar="PATH", help="paths to explain (default: all under the root)"
    )

    check = commands.add_parser("check-config", help="validate a config file and print the effective config")
    check.add_argument("config", nargs="?", help=f"YAML config file (default: ${CONFIG_ENV})")

    demo = commands.add_parser("demo", help="write a synthetic dump, log it, and print how to view it")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits by itself on --help and usage errors
        return int(exc.code or 0)
    from segwatch.signals import hold_early, release_early

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
        if args.command == "demo":
            return _demo(args)
    except ConfigError as exc:
        log.error("%s", exc)
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


def _check_config(args: argparse.Namespace) -> int:
    from segwatch.config import load_config, render_config

    config = load_config(_config_path(args.config))
    print(render_config(config), end="")
    return EXIT_OK


def _once(args: argparse.Namespace) -> int:
    from segwatch.config import load_config
    from segwatch.service import run_once

    config = load_config(_config_path(args.config))
    try:
        tally = run_once(config)
    except SinkError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    print(tally.line())
    return EXIT_FAILED if tally.failed else EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from segwatch.config import load_config
    from segwatch.explain import explain

    config = load_config(_config_path(args.config))
    for line in explain(config, args.paths):
        print(one_line(line))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from segwatch.config import load_config
    from segwatch.service import run_daemon
    from segwatch.signals import Grace, capture_signals

    path = _config_path(args.config)
    stop, reload, grace = threading.Event(), threading.Event(), Grace()
    with capture_signals(stop, reload, grace):
        config = load_config(path)
        run_daemon(config, config_path=path, stop=stop, reload=reload, grace=grace)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from segwatch import demo
    from segwatch.config import load_config
    from segwatch.service import run_once

    dumps, logdir = Path(args.dumps), Path(args.logdir)
    config_path = dumps / "segwatch.yaml"
    demo.write_config(config_path, demo.demo_config(dumps / "dumps", logdir))
    if args.live:
        from segwatch.livedemo import follow_live

        (dumps / "dumps").mkdir(parents=True, exist_ok=True)
        written = follow_live(dumps / "dumps", logdir, config_path)
        print(f"{written} epochs written by the training job and logged by the daemon as they came")
        failed = False
    else:
        written = demo.write_dump(dumps / "dumps")
        log.info("wrote %d demo epochs under %s", written, dumps / "dumps")
        tally = run_once(load_config(config_path))
        print(tally.line())
        failed = bool(tally.failed)
    beside = Path(sys.executable).parent / "tensorboard"
    tensorboard = str(beside) if beside.exists() else shutil.which("tensorboard") or "tensorboard"
    print(
        "\nView it with:\n"
        f"  {tensorboard} --logdir {logdir} --samples_per_plugin images=1000 --host 127.0.0.1 --port 6006\n"
        "then open http://localhost:6006 (Time Series and Images tabs), or the segwatch viewer (masks over the "
        "images, class toggles, zoom, compare epochs):\n"
        "  http://localhost:6006/#segwatch_viewer\n"
        f"Follow the dump live with: segwatch run --config {config_path}"
    )
    return EXIT_FAILED if failed else EXIT_OK
