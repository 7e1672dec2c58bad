"""The daemon's own resilience, as whole processes: one writer per logdir, inputs and neighbours that cannot
stop it, bounded descriptors, signals at any moment, a quiet idle loop, and a logdir deleted under it.

Helpers (processes, waiting, expectations) are test_daemon's; everything is real: .npy files, event files
read back with TensorBoard's reader, signals, sockets, resource limits.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_daemon import (
    SEED,
    Children,
    DaemonProcess,
    assert_logged_once,
    expected_for,
    ledger_epochs,
    segwatch_once,
    wait_for_ledger,
    wait_until,
    write_epochs,
)
from test_daemon import children as children
from test_daemon import config as config

from segwatch.dump import save_epoch
from segwatch.output.ledger import LEDGER_NAME
from segwatch.output.lock import EXIT_LOCKED, LOCK_NAME

from conftest import free_port, raw_record_counts
from producer import epoch_arrays

ConfigFactory = Callable[..., Path]


class LimitedDaemon(DaemonProcess):
    """`segwatch run` with a lower RLIMIT_NOFILE (soft and hard), as a container or a shared node imposes."""

    def __init__(
        self, config: Path, log_path: Path, nofile: int | None = None, command: list[str] | None = None
    ) -> None:
        self.log_path = log_path
        self._log_start = log_path.stat().st_size if log_path.exists() else 0

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*(command or [sys.executable, "-m", "segwatch"]), "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=limit,
            )
        self.started = time.monotonic()


def start(
    children: Children, config: Path, nofile: int | None = None, command: list[str] | None = None
) -> LimitedDaemon:
    daemon = LimitedDaemon(config, children.log_path, nofile, command)
    children.processes.append(daemon.process)
    return daemon


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (from /proc/<pid>/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_interpreter_start() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - started


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return int(response.status)


def metric(port: int, name: str) -> float | None:
    """The value of the unlabelled sample `name` on /metrics, or None while it is not there."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            sample, _, value = line.partition(" ")
            if sample == name:
                return float(value)
    return None


# --- one process per logdir ---------------------------------------------------------------------------------


def test_a_second_daemon_and_once_beside_run_exit_3_and_a_killed_holder_is_taken_over(
    tmp_path, children, config
):
    path = config()
    logdir = tmp_path / "tb"
    write_epochs(tmp_path / "dumps", {"exp": range(1, 3)})
    first = children.daemon(path)
    wait_for_ledger(logdir, {"exp": {1, 2}}, first)

    second = children.daemon(path)
    assert second.process.wait(60) == EXIT_LOCKED
    (busy,) = second.lines("in use by another segwatch")
    assert f"pid {first.process.pid} on host {socket.gethostname()}, since " in busy
    beside = segwatch_once(path)
    assert beside.returncode == EXIT_LOCKED, beside.stderr
    assert f"pid {first.process.pid}" in beside.stderr

    write_epochs(tmp_path / "dumps", {"exp": {3}})
    wait_for_ledger(logdir, {"exp": {1, 2, 3}}, first)
    # kill -9 leaves the lock file (and its holder line) behind; the kernel released the lock itself.
    first.kill()
    assert json.loads((logdir / LOCK_NAME).read_text())["pid"] == first.process.pid
    third = children.daemon(path)
    third.wait_for_line("caught up", timeout=90)
    write_epochs(tmp_path / "dumps", {"exp": {4}})
    wait_for_ledger(logdir, {"exp": {1, 2, 3, 4}}, third)
    assert json.loads((logdir / LOCK_NAME).read_text())["pid"] == third.process.pid
    assert third.terminate()[0] == 0
    assert_logged_once(logdir, expected_for({"exp": range(1, 5)}))


# --- inputs that used to end the process ------------------------------------------------------------------


def forged_npy(path: Path, shape: tuple[int, ...]) -> None:
    """A .npy file whose header is a valid literal claiming `shape`, followed by one byte."""
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0")


def test_inputs_that_used_to_raise_unexpectedly_get_one_line_each_and_the_daemon_goes_on(
    tmp_path, children, config
):
    """Inputs that once raised TensorFlow's or numpy's own ValueError deep inside the load, live: each is now
    named in one line and the daemon goes on. (The bulkhead for errors nobody foresaw, programming errors
    included, is proven in tests/service/test_bulkhead.py with a failure injected at the sink boundary.)"""
    path = config()
    root = tmp_path / "dumps"
    gt, pred = epoch_arrays(SEED, "bad", 1)
    # An epoch number above int64: TensorFlow's step conversion used to raise.
    huge = root / "huge" / "epoch_9223372036854775808"
    huge.mkdir(parents=True)
    np.save(huge / "gt.npy", gt)
    np.save(huge / "pred.npy", pred)
    # More dimensions than numpy supports: numpy's own ValueError, from deep inside the load.
    dims = root / "dims" / "epoch_1"
    dims.mkdir(parents=True)
    np.save(dims / "gt.npy", gt)
    forged_npy(dims / "pred.npy", (1,) * 70)
    write_epochs(root, {"exp": {1}})
    daemon = children.daemon(path)
    wait_for_ledger(tmp_path / "tb", {"exp": {1}}, daemon)
    write_epochs(root, {"exp": {2}})
    wait_for_ledger(tmp_path / "tb", {"exp": {1, 2}}, daemon)
    daemon.assert_alive()
    huge_lines = daemon.lines("epoch_9223372036854775808", "int64")
    assert len(huge_lines) == 1 and " WARNING " in huge_lines[0], daemon.stderr[-3000:]
    dims_lines = daemon.lines("run=dims epoch=1 set aside")
    assert len(dims_lines) == 1 and "dims/epoch_1/pred.npy" in dims_lines[0], daemon.stderr[-3000:]
    assert "Traceback" not in daemon.stderr
    assert daemon.terminate()[0] == 0
    assert_logged_once(tmp_path / "tb", expected_for({"exp": {1, 2}}))


# --- bounded descriptors -------------------------------------------------------------------------------------


def test_a_thousand_runs_under_a_low_descriptor_limit_are_all_logged(tmp_path, children, config):
    runs = 1000
    root = tmp_path / "dumps"
    for index in range(runs):
        directory = root / f"run{index:04d}" / "epoch_1"
        directory.mkdir(parents=True)
        gt, pred = epoch_arrays(SEED, "sweep", index % 7)
        np.save(directory / "gt.npy", gt)
        np.save(directory / "pred.npy", pred)
    path = config(watch={"settle": 0})
    daemon = start(children, path, nofile=256)
    peak = 0

    def all_logged() -> bool:
        nonlocal peak
        peak = max(peak, open_fds(daemon.process.pid))
        return sum(len(epochs) for epochs in ledger_epochs(tmp_path / "tb").values()) == runs

    wait_until(all_logged, 100, f"{runs} runs in the ledger", daemon)
    peak = max(peak, open_fds(daemon.process.pid))
    assert peak < 150, f"{peak} descriptors open at the peak"
    assert "Too many open files" not in daemon.stderr
    assert daemon.terminate()[0] == 0
    for index in range(0, runs, 97):
        counts = raw_record_counts(tmp_path / "tb" / f"run{index:04d}")
        assert counts and set(counts.values()) == {1} and {step for _, step in counts} == {1}


def test_a_thousand_idle_connections_starve_neither_healthz_nor_the_epochs(tmp_path, children, config):
    port = free_port()
    path = config(http={"enabled": True, "port": port})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip(f"this test process may open only {hard} descriptors; it needs 1,100")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
    daemon = start(children, path, nofile=512)
    daemon.wait_for_line("caught up", timeout=90)
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for epoch in range(1, 6):
            write_epochs(tmp_path / "dumps", {"exp": {epoch}})
            wait_for_ledger(tmp_path / "tb", {"exp": set(range(1, epoch + 1))}, daemon, timeout=30)
            assert healthz(port) == 200
        assert open_fds(daemon.process.pid) < 400
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # A live re-dump of a logged epoch (a resumed job): reported once, counted, the logged one kept.
    gt, pred = epoch_arrays(SEED, "resumed", 5)
    save_epoch(tmp_path / "dumps", 5, gt=gt, pred=pred, run="exp")
    daemon.wait_for_line("run=exp epoch=5 was dumped again", timeout=30)
    # The processor logs the re-dump while it handles the epoch; the reporter counts it once the processor
    # has returned, so a scrape right after the line may come before the count.
    wait_until(
        lambda: metric(port, "segwatch_epochs_redumped_total") == 1.0, 30, "the re-dump's count", daemon
    )
    time.sleep(1)
    assert len(daemon.lines("dumped again")) == 1
    assert daemon.terminate()[0] == 0
    assert_logged_once(tmp_path / "tb", expected_for({"exp": range(1, 6)}))


# --- signals, reloads and a quiet idle loop ---------------------------------------------------------------


def test_early_sighup_bad_reloads_and_idle_cpu(tmp_path, children, config):
    path = config()
    # Nothing but Python's own start-up may precede the handler. That alone takes ~15 ms on an idle machine
    # and several times more on a loaded one, so the signal comes at 50 ms or twice a bare interpreter's
    # start-up, whichever is later; before the fix the window lasted until the config and TensorFlow loaded.
    delay = max(0.05, 2 * min(bare_interpreter_start() for _ in range(3)))
    # The console script, as systemd and the container start it (`python -m` spends ~30 ms in runpy first).
    daemon = start(children, path, command=[str(Path(sys.executable).with_name("segwatch"))])
    wait_until(lambda: "run" in Path(f"/proc/{daemon.process.pid}/cmdline").read_text(), 5, "the exec")
    time.sleep(delay)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_line("caught up", timeout=90)
    write_epochs(tmp_path / "dumps", {"exp": {1}})
    wait_for_ledger(tmp_path / "tb", {"exp": {1}}, daemon)

    # Idle with the rescan and the status line both disabled (0): the loop must sleep, not spin.
    time.sleep(1)
    before, since = cpu_seconds(daemon.process.pid), time.monotonic()
    time.sleep(4)
    used = (cpu_seconds(daemon.process.pid) - before) / (time.monotonic() - since)
    assert used < 0.05, f"idle daemon used {used:.1%} of a core"

    good = path.read_text()
    # Valid YAML the models used to accept and the renderer refused: more classes than ignore_index allows.
    rejected = yaml.safe_load(good)
    rejected["compose"]["num_classes"] = 300
    rejected["compose"]["palette"] = "ade20k"
    rejected["compose"].pop("ignore_index", None)
    # An alias bomb: a few hundred bytes that expand to 10^9 values.
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        levels.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    bomb = good + "bomb:\n" + "".join(f"  {line}\n" for line in levels)
    for count, text in enumerate((yaml.safe_dump(rejected), bomb), start=1):
        path.write_text(text)
        daemon.process.send_signal(signal.SIGHUP)
        wait_until(
            lambda count=count: len(daemon.lines("reload: keeping the running config")) == count,
            30,
            "the reload to be refused",
            daemon,
        )
    kept = daemon.lines("reload: keeping the running config")
    assert len(kept) == 2 and all(len(line) < 1500 for line in kept), kept
    assert "ignore_index" in kept[0] and "alias" in kept[1]
    write_epochs(tmp_path / "dumps", {"exp": {2}})
    wait_for_ledger(tmp_path / "tb", {"exp": {1, 2}}, daemon)
    assert daemon.terminate()[0] == 0
    assert_logged_once(tmp_path / "tb", expected_for({"exp": {1, 2}}))


# --- names, leftovers, re-dumps and a vanished logdir -------------------------------------------------------


def test_glob_characters_in_run_and_logdir_names(tmp_path, config, write_config):
    logdir = tmp_path / "tb[1]"
    logdir.mkdir()
    # Torn temporary files of a ledger write a kill interrupted are cleared by the next holder.
    (logdir / f"{LEDGER_NAME}.a1b2c3.tmp").write_text('{"version": 1, "ru')
    path = config(tensorboard={"logdir": str(logdir)})
    write_epochs(tmp_path / "dumps", {"lr[0.1]": range(1, 4), "bs*": range(1, 3)})
    done = segwatch_once(path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("5 logged"), done.stdout
    assert "disk full" not in done.stderr
    assert not list(logdir.glob("*.tmp"))
    assert_logged_once(logdir, expected_for({"lr[0.1]": range(1, 4), "bs*": range(1, 3)}))
    # One event file per run: no write was mistaken for a failed one and retried into a new file.
    assert len(os.listdir(logdir / "lr[0.1]")) == 1


def test_a_redumped_epoch_is_reported_once_and_save_epoch_does_not_raise(tmp_path, config):
    path = config()
    root = tmp_path / "dumps"
    write_epochs(root, {"exp": range(1, 4)})
    assert segwatch_once(path).returncode == 0
    # A job resumed from a checkpoint dumps epoch 3 again, with new data: save_epoch replaces it.
    gt, pred = epoch_arrays(SEED, "resumed", 3)
    save_epoch(root, 3, gt=gt, pred=pred, run="exp")
    again = segwatch_once(path)
    assert again.returncode == 0, again.stderr
    (line,) = [line for line in again.stderr.splitlines() if "dumped again" in line]
    assert "run=exp epoch=3" in line and "segwatch relog" in line
    third = segwatch_once(path)
    assert "dumped again" not in third.stderr
    assert_logged_once(tmp_path / "tb", expected_for({"exp": range(1, 4)}))


def test_a_logdir_deleted_under_the_daemon_is_rebuilt_from_the_disk(tmp_path, children, config):
    path = config()
    logdir = tmp_path / "tb"
    write_epochs(tmp_path / "dumps", {"exp": range(1, 3)})
    daemon = children.daemon(path)
    wait_for_ledger(logdir, {"exp": {1, 2}}, daemon)
    shutil.rmtree(logdir)
    daemon.wait_for_line("deleted or replaced under the daemon", timeout=30)
    write_epochs(tmp_path / "dumps", {"exp": {3}})
    # What the old logdir held is gone with it: the dump still has it, so the new logdir gets all of it.
    wait_for_ledger(logdir, {"exp": {1, 2, 3}}, daemon)
    assert json.loads((logdir / LOCK_NAME).read_text())["pid"] == daemon.process.pid
    assert daemon.terminate()[0] == 0
    assert_logged_once(logdir, expected_for({"exp": range(1, 4)}))
