"""`segwatch run` as a real process, fed by real producers, read back with TensorBoard's own reader.

Every wait polls a condition (the ledger, the daemon's log, the process) against a deadline. Pixels are compared
exactly: panels are stretched to the array size, so each decoded pair is `palette[gt] | gutter | palette[pred]`.
"""

from __future__ import annotations

import errno
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from segwatch.dump import save_epoch
from segwatch.output.ledger import LEDGER_NAME, Ledger

from conftest import raw_record_counts, read_images
from producer import SIZE, epoch_arrays

SEED = 1729
PRODUCER = Path(__file__).with_name("producer.py")
PALETTE = [[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200], [250, 250, 0]]
TAG = "segwatch/pairs"

# Small arrays, a short settle, no periodic rescan unless a test asks for one (so the observer must deliver),
# and pair panels at the array size so pixels compare exactly.
BASE_CONFIG: dict[str, dict[str, object]] = {
    "watch": {"settle": "200ms", "rescan_interval": 0},
    "service": {"status_interval": 0},
    "compose": {
        "num_classes": 5,
        "layout": "pair",
        "panels": ["gt", "pred"],
        "size": [SIZE, SIZE],
        "resize": "stretch",
        "palette": PALETTE,
        "legend": "none",
        "headers": False,
    },
    "metrics": {"enabled": False},
}

Expected = dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]


# --- processes -------------------------------------------------------------------------------------------


class DaemonProcess:
    """`segwatch run --config F` as a child process; its stderr goes to a log file the test reads as it runs."""

    def __init__(self, config: Path, log_path: Path, log_level: str = "info") -> None:
        self.log_path = log_path
        self._log_start = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "segwatch", "--log-level", log_level, "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.started = time.monotonic()

    @property
    def stderr(self) -> str:
        """What this process has logged so far."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def lines(self, *fragments: str) -> list[str]:
        return [line for line in self.stderr.splitlines() if all(f in line for f in fragments)]

    def assert_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"the daemon exited with status {code}:\n{self.stderr[-4000:]}")

    def wait_for_line(self, *fragments: str, timeout: float = 30) -> str:
        """The first log line containing every fragment, once it has been written."""
        wait_until(lambda: bool(self.lines(*fragments)), timeout, f"a log line with {fragments}", self)
        return self.lines(*fragments)[0]

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        """Send SIGTERM; return the exit status and the seconds from the signal to the exit."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - sent

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)


class ProducerProcess:
    """tests/e2e/producer.py as a child process, writing epochs into a dump root."""

    def __init__(self, root: Path, args: tuple[str, ...], out_path: Path) -> None:
        self.out_path, self.err_path = out_path, out_path.with_suffix(".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(PRODUCER), str(root), "--seed", str(SEED), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def finish(self, timeout: float = 60) -> dict[tuple[str, int], float]:
        """Wait for the producer to end; return when each (run, epoch) it wrote was complete on disk."""
        code = self.process.wait(timeout)
        assert code == 0, self.err_path.read_text()
        completed = {}
        for line in self.out_path.read_text().splitlines():
            run, epoch, when = line.split()
            completed[(run, int(epoch))] = float(when)
        return completed

    def stop(self) -> dict[tuple[str, int], float]:
        """End the producer between two epochs (if it is still writing); return what it wrote, as `finish` does."""
        self.process.send_signal(signal.SIGTERM)
        return self.finish()


class Children:
    """Every process a test starts, so each one is ended and reaped whatever happens to the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.log_path = tmp_path / "daemon.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def daemon(self, config: Path, log_level: str = "info") -> DaemonProcess:
        started = DaemonProcess(config, self.log_path, log_level)
        self.processes.append(started.process)
        return started

    def producer(self, *args: str) -> ProducerProcess:
        out_path = self.tmp_path / f"producer-{len(self.processes)}.out"
        started = ProducerProcess(self.tmp_path / "dumps", args, out_path)
        self.processes.append(started.process)
        return started

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(30)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    started = Children(tmp_path)
    try:
        yield started
    finally:
        started.close()


def segwatch_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", "once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- configuration and waiting ----------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, write_config: Callable[..., Path]) -> Callable[..., Path]:
    """Write the test config (BASE_CONFIG with `sections` merged in per key); returns its path."""
    (tmp_path / "dumps").mkdir(exist_ok=True)

    def write(**sections: dict[str, object]) -> Path:
        merged = {name: dict(values) for name, values in BASE_CONFIG.items()}
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        return write_config(**merged)

    return write


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, daemon: DaemonProcess | None = None
) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds, or at once if the daemon died."""
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon is not None:
            daemon.assert_alive()
        if time.monotonic() > deadline:
            log = "" if daemon is None else f"\ndaemon log:\n{daemon.stderr[-4000:]}"
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{log}")
        time.sleep(0.02)


def stays_alive_until(daemon: DaemonProcess, instant: float) -> None:
    """Return at the monotonic `instant`; fail if the daemon exits before it."""
    wait_until(lambda: time.monotonic() >= instant, instant - time.monotonic() + 5, "the instant", daemon)


def ledger_epochs(logdir: Path) -> dict[str, set[int]]:
    """The epochs the ledger records as done, per run (empty while there is no readable ledger)."""
    # Through the ledger's own reader: the snapshot plus the journal of commits since.
    return {run: set(record.done) for run, record in Ledger.open(logdir).runs.items()}


def wait_for_ledger(
    logdir: Path, wanted: Mapping[str, set[int]], daemon: DaemonProcess, timeout: float = 60
) -> dict[tuple[str, int], float]:
    """Wait until the ledger holds every wanted epoch; return when each (run, epoch) was first seen done."""
    first_seen: dict[tuple[str, int], float] = {}

    def all_done() -> bool:
        done = ledger_epochs(logdir)
        now = time.time()
        for run, epochs in done.items():
            for epoch in epochs:
                first_seen.setdefault((run, epoch), now)
        return all(epochs <= done.get(run, set()) for run, epochs in wanted.items())

    wait_until(all_done, timeout, f"the ledger to hold {dict(wanted)}", daemon)
    return first_seen


# --- expectations -----------------------------------------------------------------------------------------


def expected_for(runs_epochs: Mapping[str, set[int] | range]) -> Expected:
    return {run: {e: epoch_arrays(SEED, run, e) for e in epochs} for run, epochs in runs_epochs.items()}


def write_epochs(root: Path, runs_epochs: Mapping[str, set[int] | range]) -> None:
    """Write epochs the way a training job calling `save_epoch` does."""
    for run, epochs in runs_epochs.items():
        for epoch in sorted(epochs):
            gt, pred = epoch_arrays(SEED, run, epoch)
            save_epoch(root, epoch, gt=gt, pred=pred, run=run)


def assert_pair_pixels(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, where: str) -> None:
    palette = np.array(PALETTE, dtype=np.uint8)
    assert image.shape[0] == SIZE and image.shape[1] > 2 * SIZE, f"{where}: shape {image.shape}"
    np.testing.assert_array_equal(image[:, :SIZE], palette[gt], err_msg=f"{where}: gt panel")
    np.testing.assert_array_equal(image[:, -SIZE:], palette[pred], err_msg=f"{where}: pred panel")


def assert_pixels(logdir: Path, expected: Expected, tag: str = TAG) -> None:
    """TensorBoard's reader shows exactly the expected steps under `tag`, each in its arrays' colours."""
    for run, epochs in expected.items():
        images = read_images(logdir / run)[tag]
        assert sorted(images) == sorted(epochs), f"run {run}: TensorBoard shows steps {sorted(images)}"
        for epoch, (gt, pred) in epochs.items():
            (image,) = images[epoch]
            assert_pair_pixels(image, gt, pred, f"run {run} epoch {epoch}")


def assert_logged_once(logdir: Path, expected: Expected) -> None:
    """The raw event records hold every tag of each expected epoch exactly once and nothing else, in the right
    colours. An epoch writes several tags (the image and its metrics), so a torn epoch shows as a tag missing
    at one step or written twice."""
    for run, epochs in expected.items():
        counts = raw_record_counts(logdir / run)
        tags = {tag for tag, _ in counts}
        assert TAG in tags, f"run {run}: no {TAG} records"
        wrong = {key: n for key, n in counts.items() if n != 1 or key[1] not in epochs}
        missing = sorted((tag, e) for tag in tags for e in epochs if (tag, e) not in counts)
        assert not wrong and not missing, f"run {run}: unexpected records {wrong}, missing {missing}"
    assert_pixels(logdir, expected)


def report(name: str, seconds: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms "
        f"over {len(seconds)}"
    )


# --- producers ----------------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_slow_in_place_writer_is_logged_once_with_its_final_data(tmp_path, children, config):
    daemon = children.daemon(config())
    daemon.wait_for_line("caught up")
    # Each pause between chunks outlasts the settle window: only the header's promise says a file is short.
    producer = children.producer(
        "--mode", "inplace", "--runs", "slow", "--count", "4", "--chunk-pause", "0.3"
    )
    assert len(producer.finish()) == 4
    wait_for_ledger(tmp_path / "tb", {"slow": set(range(4))}, daemon)
    daemon.assert_alive()
    assert_logged_once(tmp_path / "tb", expected_for({"slow": range(4)}))
    assert not daemon.lines(" ERROR "), daemon.stderr


@pytest.mark.timeout(90)
def test_renamed_files_and_renamed_epoch_directories_are_logged(tmp_path, children, config):
    daemon = children.daemon(config())
    # A first epoch pays for TensorFlow's import, so the latencies below measure the steady state.
    write_epochs(tmp_path / "dumps", {"warmup": {0}})
    wait_for_ledger(tmp_path / "tb", {"warmup": {0}}, daemon)
    producers = [
        children.producer("--mode", mode, "--runs", run, "--count", "6", "--interval", "0.3")
        for mode, run in (("rename-file", "files"), ("rename-dir", "dirs"))
    ]
    wanted = {"files": set(range(6)), "dirs": set(range(6))}
    first_seen = wait_for_ledger(tmp_path / "tb", wanted, daemon)  # polls while the producers write
    completed = {key: when for p in producers for key, when in p.finish().items()}
    assert_logged_once(tmp_path / "tb", expected_for(wanted))
    latencies = [first_seen[key] - when for key, when in completed.items()]
    print(report("complete on disk -> in the ledger (inotify, settle 200ms)", latencies))


@pytest.mark.timeout(60)
def test_polling_observer_logs_a_new_epoch(tmp_path, children, config):
    daemon = children.daemon(config(watch={"observer": "polling", "poll_interval": "200ms"}))
    daemon.wait_for_line("with the polling observer")
    daemon.wait_for_line("caught up")
    write_epochs(tmp_path / "dumps", {"polled": {0, 1}})
    wait_for_ledger(tmp_path / "tb", {"polled": {0, 1}}, daemon)
    assert_logged_once(tmp_path / "tb", expected_for({"polled": range(2)}))


@pytest.mark.timeout(180)
def test_two_thousand_files_dropped_at_once_are_each_logged_once(tmp_path, children, config):
    runs = {"a": range(334), "b": range(333), "c": range(333)}  # 1,000 epochs, 2,000 files
    root = tmp_path / "dumps"
    # Half is there before the start; half lands while the daemon is catching up, through a hint queue far
    # too small for it, so overflowing into a rescan must lose nothing.
    for run, epochs in runs.items():
        for epoch in epochs[: len(epochs) // 2]:
            directory = root / run / f"epoch_{epoch}"
            directory.mkdir(parents=True)
            gt, pred = epoch_arrays(SEED, run, epoch)
            np.save(directory / "gt.npy", gt)
            np.save(directory / "pred.npy", pred)
    daemon = children.daemon(config(service={"queue_size": 64}), log_level="debug")
    daemon.wait_for_line("watching", "observer")
    write_epochs(root, {run: epochs[len(epochs) // 2 :] for run, epochs in runs.items()})
    started = time.monotonic()
    wait_for_ledger(tmp_path / "tb", {run: set(epochs) for run, epochs in runs.items()}, daemon, timeout=150)
    print(f"1,000 epochs logged within {time.monotonic() - started:.1f} s of the last file landing")
    daemon.assert_alive()
    assert daemon.lines("hint queue full"), (
        "the hint queue never overflowed: the test proves less than it says"
    )
    assert_logged_once(tmp_path / "tb", expected_for(runs))
    assert not daemon.lines(" WARNING "), daemon.stderr


# --- crashes and a lost ledger ------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_kill_9_at_random_instants_repeats_and_misses_nothing(tmp_path, children, config):
    """A smoke test over real processes: a few kills, one inside start-up, the others mid-catch-up. That every
    instant between write and commit is survived is proven, deterministically and point by point, by
    tests/service/test_processor.py."""
    rng = random.Random(SEED)
    logdir = tmp_path / "tb"
    path = config()
    # About as long as the cycles take on an idle machine; capped, so a busy machine does not make a backlog
    # (and a read-back) many times larger.
    producer = children.producer(
        "--mode", "rename-dir", "--runs", "a,b", "--interval", "0.5", "--count", "40"
    )
    cycles, mid_backlog = 3, 0
    for cycle in range(cycles):
        daemon = children.daemon(path)
        if cycle % 2:
            # Anywhere from inside start-up (imports, reconciling, the scan) to well into catching up.
            kill_at = daemon.started + rng.uniform(0.3, 4.5)
        else:
            # Within the burst that catches up on what arrived while it was down: mid-write or mid-commit.
            daemon.wait_for_line(" logged ")
            kill_at = time.monotonic() + rng.uniform(0.0, 0.3)
        stays_alive_until(daemon, kill_at)
        daemon.kill()
        mid_backlog += bool(daemon.lines(" logged ")) and not daemon.lines("caught up")
    completed = producer.stop()
    unrecorded = children.log_path.read_text().count("beyond the ledger")
    print(
        f"{cycles} kills, {mid_backlog} while catching up; {unrecorded} restarts found an epoch written "
        f"but not recorded; {len(completed)} epochs produced"
    )

    catch_up = segwatch_once(path)
    assert catch_up.returncode == 0, catch_up.stderr
    wanted: dict[str, set[int]] = {}
    for run, epoch in completed:
        wanted.setdefault(run, set()).add(epoch)
    assert ledger_epochs(logdir) == wanted
    assert_logged_once(logdir, expected_for(wanted))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_lost_or_corrupt_ledger_is_rebuilt_from_the_event_files(tmp_path, children, config, damage):
    path = config()
    logdir = tmp_path / "tb"
    write_epochs(tmp_path / "dumps", {"r": range(4), "s": range(2)})
    first = segwatch_once(path)
    assert first.returncode == 0 and first.stdout.startswith("6 logged"), first.stderr
    ledger = logdir / LEDGER_NAME
    if damage == "deleted":
        ledger.unlink()
    else:  # overwritten by bytes that are not even UTF-8, as a bad sector or a stray writer would leave it
        ledger.write_bytes(random.Random(SEED).randbytes(300))
    write_epochs(tmp_path / "dumps", {"r": {4, 5}})

    daemon = children.daemon(path)
    wanted = {"r": set(range(6)), "s": set(range(2))}
    wait_for_ledger(logdir, wanted, daemon)
    write_epochs(tmp_path / "dumps", {"s": {2}})
    wait_for_ledger(logdir, {"s": {2}}, daemon)
    assert_logged_once(logdir, expected_for({"r": range(6), "s": range(3)}))
    if damage == "garbage":
        assert daemon.lines("ledger unreadable"), daemon.stderr


@pytest.mark.timeout(60)
def test_late_epoch_is_skipped_with_a_warning_and_later_ones_are_logged(tmp_path, children, config):
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    daemon = children.daemon(config())
    write_epochs(root, {"r": {0, 1, 5}})
    wait_for_ledger(logdir, {"r": {0, 1, 5}}, daemon)
    write_epochs(root, {"r": {3}})
    warning = daemon.wait_for_line("run=r epoch=3", "skipped")
    assert " WARNING " in warning
    write_epochs(root, {"r": {6}})
    wait_for_ledger(logdir, {"r": {6}}, daemon)
    assert 3 not in ledger_epochs(logdir)["r"]
    # TensorBoard's loader purges every step above an out-of-order one: the newer steps must all be there.
    assert_logged_once(logdir, expected_for({"r": {0, 1, 5, 6}}))


# --- signals --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_sighup_reloads_a_good_config_keeps_on_a_bad_one_and_sigterm_exits_promptly(
    tmp_path, children, config
):
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    path = config()
    daemon = children.daemon(path)
    write_epochs(root, {"r": {0}})
    wait_for_ledger(logdir, {"r": {0}}, daemon)

    path.write_text("compose: {size: [256]\n")  # not even YAML
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_line("reload: keeping the running config")
    write_epochs(root, {"r": {1}})
    wait_for_ledger(logdir, {"r": {1}}, daemon)

    config(tensorboard={"tag_prefix": "renamed"})
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_line("reload: config", "loaded")
    write_epochs(root, {"r": {2}})
    wait_for_ledger(logdir, {"r": {2}}, daemon)
    counts = raw_record_counts(logdir / "r")
    assert set(counts.values()) == {1}, counts
    pictures = Counter({key: n for key, n in counts.items() if "/viewer/" not in key[0]})
    assert pictures == Counter({(TAG, 0): 1, (TAG, 1): 1, ("renamed/pairs", 2): 1})
    assert ("renamed/viewer/epoch", 2) in counts
    assert_pixels(logdir, expected_for({"r": {0, 1}}))
    assert_pixels(logdir, expected_for({"r": {2}}), tag="renamed/pairs")

    # SIGTERM in the middle of a backlog: the epoch in hand is finished or abandoned, never half-recorded.
    write_epochs(root, {"busy": range(400)})
    wait_until(lambda: "busy" in ledger_epochs(logdir), 60, "the backlog to start", daemon)
    code, latency = daemon.terminate()
    print(f"SIGTERM to exit: {latency * 1000:.0f} ms (while draining a backlog of 400 epochs)")
    assert code == 0, daemon.stderr
    assert latency < 10
    done = ledger_epochs(logdir)["busy"]
    assert done < set(range(400)), "the backlog was finished before the signal; it proves nothing"
    busy = raw_record_counts(logdir / "busy")
    assert set(busy.values()) == {1}, busy
    assert {key for key in busy if "/viewer/" not in key[0]} == {("renamed/pairs", e) for e in done}
    assert {step for _, step in busy} == done


# --- output failure -------------------------------------------------------------------------------------------


def fill_up(directory: Path) -> Path:
    """Fill the filesystem holding `directory` until a write fails with ENOSPC; return the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


@pytest.fixture
def tiny_logdir(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path/tb` on its own 2 MiB tmpfs, so the test can fill it up; unmounted afterwards."""
    logdir = tmp_path / "tb"
    logdir.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command, so no small filesystem to fill up")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(logdir)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield logdir
    finally:
        subprocess.run(["umount", str(logdir)], check=True, capture_output=True)


@pytest.mark.timeout(120)
def test_full_output_disk_delays_epochs_and_loses_none(tmp_path, children, config, tiny_logdir):
    root = tmp_path / "dumps"
    # Metrics on: each epoch writes many tags, so a failure can tear an epoch between records.
    daemon = children.daemon(config(service={"retry_backoff": ["200ms", "1s"]}, metrics={"enabled": True}))

    def fill_while_epochs_arrive(epochs: range) -> None:
        failures = len(daemon.lines("output failing"))
        filler = fill_up(tiny_logdir)
        for epoch in epochs:
            write_epochs(root, {"r": {epoch}})
            time.sleep(0.1)
        wait_until(lambda: len(daemon.lines("output failing")) > failures, 30, "a failure", daemon)
        failure = daemon.lines("output failing")[-1]
        assert "No space left on device" in failure or "is the disk full?" in failure, failure
        assert not set(epochs) <= ledger_epochs(tiny_logdir).get("r", set()), "nothing waited for space"
        filler.unlink()

    try:
        daemon.wait_for_line("caught up")
        # Full before anything is written: no event file can be started.
        fill_while_epochs_arrive(range(3))
        wait_for_ledger(tiny_logdir, {"r": set(range(3))}, daemon, timeout=30)
        # Full again, with an event file whose last page has room: the summaries may fit, recording them not.
        fill_while_epochs_arrive(range(3, 6))
        write_epochs(root, {"r": {6, 7}})
        wait_for_ledger(tiny_logdir, {"r": set(range(8))}, daemon, timeout=30)
        assert len(daemon.lines("output writable again")) == 2
        assert_logged_once(tiny_logdir, expected_for({"r": range(8)}))
    finally:
        # The filesystem is unmounted next; nothing may hold it open.
        if daemon.process.poll() is None:
            daemon.kill()
