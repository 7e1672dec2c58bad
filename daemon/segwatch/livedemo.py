"""`segwatch demo --live`: a synthetic training job writing epochs while a real `segwatch run` follows it.

The daemon is a child process, exactly what a user starts beside training; its log lines are passed through,
so each epoch can be seen being picked up and logged moments after the job writes it. When the last epoch is
in the ledger the daemon is stopped with SIGTERM, as systemd or Kubernetes would stop it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from segwatch import demo
from segwatch.output.ledger import open_ledger

log = logging.getLogger(__name__)

_READY_MARK = "watching "  # the daemon's line once its observer is up


def _relay(stream: IO[str], ready: threading.Event) -> None:
    for line in stream:
        sys.stderr.write(f"  daemon | {line}")
        sys.stderr.flush()
        if _READY_MARK in line:
            ready.set()
    ready.set()  # the daemon has gone: nobody waits for it any longer


def _all_done(logdir: Path) -> bool:
    ledger = open_ledger(logdir)
    return all(ledger.is_done(run, demo.EPOCHS - 1) for run in demo.RUNS)


def follow_live(
    dumps: Path, logdir: Path, config_path: Path, *, interval: float = 1.0, timeout: float = 120.0
) -> int:
    """Start the daemon on `config_path`, write the demo epochs one by one every `interval` seconds, wait
    until the daemon has logged the last of them, stop it. Returns how many epochs were written."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "segwatch", "run", "--config", str(config_path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert daemon.stderr is not None
    ready = threading.Event()
    relay = threading.Thread(target=_relay, args=(daemon.stderr, ready), daemon=True)
    relay.start()
    written = 0
    try:
        if not ready.wait(timeout) or daemon.poll() is not None:
            raise RuntimeError(f"the segwatch daemon did not start (exit code {daemon.poll()})")
        for run, epoch, gt, pred, image in demo.epoch_arrays():
            if demo.write_epoch(dumps, run, epoch, gt, pred, image):
                written += 1
                sys.stderr.write(f"training | run {run}: epoch {epoch} dumped\n")
                sys.stderr.flush()
                time.sleep(interval / len(demo.RUNS))
        deadline = time.monotonic() + timeout
        while not _all_done(logdir):
            if daemon.poll() is not None:
                raise RuntimeError(
                    f"the segwatch daemon exited with {daemon.returncode} before logging it all"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not log every demo epoch within {timeout:.0f} s")
            time.sleep(0.1)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        relay.join(timeout=5)
    return written
