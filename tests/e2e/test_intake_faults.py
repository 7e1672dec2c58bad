"""The intake against files that change under it, lie about their age, cannot be opened for now, or carry
numbers no TensorBoard step can hold: real `segwatch run`/`once` processes, real files, results read back
from the event files.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tensorboard.util import tensor_util
from test_daemon import Children, ledger_epochs, segwatch_once, wait_for_ledger

from conftest import read_event_tensors

HUGE_EPOCH = "9223372036854775808"  # 2**63: one past the largest int64 step

# Metrics on: they read every pixel, so a half-written or re-saved pred shows up in pixel_accuracy.
CONFIG: dict[str, dict[str, object]] = {
    "watch": {"settle": "500ms", "rescan_interval": 0},
    "service": {"status_interval": 0},
    "compose": {"num_classes": 5, "layout": "grid", "size": [64, 64], "legend": "none", "max_items": 2},
    "metrics": {"enabled": True, "per_class": False, "confusion_matrix": False},
}


@pytest.fixture
def children(tmp_path: Path):
    started = Children(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def config(tmp_path: Path, write_config: Callable[..., Path]) -> Callable[..., Path]:
    (tmp_path / "dumps").mkdir(exist_ok=True)

    def write(**sections: dict[str, object]) -> Path:
        merged = {name: dict(values) for name, values in CONFIG.items()}
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        return write_config(**merged)

    return write


def accuracies(logdir: Path, run: str) -> dict[int, list[float]]:
    """Every pixel_accuracy value written per step (a list, so a step written twice shows)."""
    tensors = read_event_tensors(logdir / run).get("segwatch/pixel_accuracy", [])
    found: dict[int, list[float]] = {}
    for step, proto in tensors:
        found.setdefault(step, []).append(float(tensor_util.make_ndarray(proto)))
    return found


def labels(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5, size=shape, dtype=np.uint8)


# --- numbers no step can hold ---------------------------------------------------------------------------


def forged_npy(path: Path, shape: str) -> None:
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())


def test_once_refuses_a_huge_epoch_and_forged_shapes_with_one_line_each_and_logs_the_rest(tmp_path, config):
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    gt = labels((2, 32, 32), 1)
    for epoch in (1, 5):
        (root / "r" / f"epoch_{epoch}").mkdir(parents=True)
        np.save(root / "r" / f"epoch_{epoch}" / "gt.npy", gt)
        np.save(root / "r" / f"epoch_{epoch}" / "pred.npy", gt)
    huge = root / "r" / f"epoch_{HUGE_EPOCH}"
    huge.mkdir()
    np.save(huge / "gt.npy", gt)
    np.save(huge / "pred.npy", gt)
    forged = {
        2: "(" + "1000000000, " * 500 + ")",  # formatting its element count breaks int-to-str
        3: "(0, 1000000000, 1000000000, 1000000000)",  # no elements, "complete" at its header
        4: "(" + "1, " * 70 + ")",  # past numpy's 64 dimensions
    }
    for epoch, shape in forged.items():
        (root / "r" / f"epoch_{epoch}").mkdir()
        np.save(root / "r" / f"epoch_{epoch}" / "gt.npy", gt)
        forged_npy(root / "r" / f"epoch_{epoch}" / "pred.npy", shape)

    result = segwatch_once(config())

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    log = result.stderr.splitlines()
    assert len([line for line in log if HUGE_EPOCH in line and "int64" in line]) == 1, log
    for epoch in forged:
        naming = [line for line in log if f"epoch_{epoch}/pred.npy" in line]
        assert len(naming) == 1 and " ERROR " in naming[0] and len(naming[0]) < 400, naming
    assert ledger_epochs(logdir) == {"r": {1, 5}}
    assert sorted(accuracies(logdir, "r")) == [1, 5]


@pytest.mark.timeout(90)
def test_the_daemon_refuses_a_huge_epoch_directory_and_keeps_logging(tmp_path, children, config):
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    daemon = children.daemon(config())
    daemon.wait_for_line("caught up")
    gt = labels((2, 32, 32), 2)
    for name in (HUGE_EPOCH, "1"):
        staging = root / f".staging-{name}"
        staging.mkdir(parents=True)
        np.save(staging / "gt.npy", gt)
        np.save(staging / "pred.npy", gt)
        (root / "r").mkdir(exist_ok=True)
        staging.rename(root / "r" / f"epoch_{name}")
    wait_for_ledger(logdir, {"r": {1}}, daemon)
    daemon.assert_alive()
    assert len(daemon.lines(HUGE_EPOCH, "int64")) == 1, daemon.stderr


# --- files that change under the reader -----------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_256_mib_pred_resaved_in_place_while_read_is_logged_once_with_its_final_data(
    tmp_path, children, config
):
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    daemon = children.daemon(config(watch={"settle": "300ms", "rescan_interval": 0}))
    daemon.wait_for_line("caught up")
    epoch = root / "r" / "epoch_1"
    epoch.mkdir(parents=True)
    shape = (16, 1024, 2048)  # int64: 256 MiB
    gt = np.zeros(shape, dtype=np.uint8)
    np.save(epoch / "gt.npy", gt)
    wrong = np.ones(shape, dtype=np.int64)
    # Re-saved in place (np.save truncates the same inode, then writes) again and again while the daemon
    # reads it: with a memory map the next page read past the truncation is SIGBUS.
    for _ in range(4):
        np.save(epoch / "pred.npy", wrong)
        time.sleep(0.35)
        daemon.assert_alive()
    final = np.zeros(shape, dtype=np.int64)
    np.save(epoch / "pred.npy", final)
    del wrong, final
    wait_for_ledger(logdir, {"r": {1}}, daemon, timeout=90)
    daemon.assert_alive()
    # Logged once, and from the final data only: every pixel right.
    assert accuracies(logdir, "r") == {1: [1.0]}, daemon.stderr[-3000:]
    assert not daemon.lines(" ERROR "), daemon.stderr[-3000:]


def fill_slowly(path: Path, final: np.ndarray, stamp: Callable[[Path], None], chunks: int = 6) -> None:
    """A preallocating producer: the file reaches its full size at once (open_memmap), then is filled chunk
    by chunk, each pause shorter than the settle window, with `stamp` applied to its times after each."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=final.dtype, shape=final.shape)
    stamp(path)
    rows = -(-final.shape[0] // chunks)
    for start in range(0, final.shape[0], rows):
        time.sleep(0.25)
        array[start : start + rows] = final[start : start + rows]
        array.flush()
        stamp(path)
    del array


def ten_minutes_back(path: Path) -> None:
    then = time.time_ns() - 600 * 10**9
    os.utime(path, ns=(then, then))


def whole_seconds(path: Path) -> None:
    now = time.time_ns() // 10**9 * 10**9
    os.utime(path, ns=(now, now))


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "stamp", [ten_minutes_back, whole_seconds], ids=["mtime-10-min-back", "whole-seconds"]
)
def test_a_preallocating_producer_is_never_read_half_written(tmp_path, children, config, stamp):
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    daemon = children.daemon(config())
    daemon.wait_for_line("caught up")
    epoch = root / "r" / "epoch_1"
    epoch.mkdir(parents=True)
    gt = labels((6, 64, 64), 3) + 1  # classes 1..4: a zero-filled (unwritten) pred is wrong everywhere
    gt[gt > 4] = 4
    np.save(epoch / "gt.npy", gt)
    fill_slowly(epoch / "pred.npy", gt.astype(np.int64), stamp)
    wait_for_ledger(logdir, {"r": {1}}, daemon, timeout=30)
    assert accuracies(logdir, "r") == {1: [1.0]}, daemon.stderr[-3000:]


# --- what can heal --------------------------------------------------------------------------------------


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.timeout(90)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs prlimit and /proc (Linux)")
def test_emfile_from_a_low_descriptor_limit_waits_and_is_logged_once_the_limit_is_raised(
    tmp_path, children, config
):
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    daemon = children.daemon(config())
    daemon.wait_for_line("caught up")
    pid = daemon.process.pid
    (root / "r" / "epoch_1").mkdir(parents=True)
    time.sleep(0.3)  # the new directory is watched before descriptors run out
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    # No descriptor left to open a dump file with (the limit may be below what is open already).
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_descriptors(pid), hard))
    gt = labels((2, 32, 32), 4)
    np.save(root / "r" / "epoch_1" / "gt.npy", gt)
    np.save(root / "r" / "epoch_1" / "pred.npy", gt)
    daemon.wait_for_line("waiting", "Too many open files", timeout=30)
    time.sleep(1.5)  # a retry or two, still without descriptors
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    wait_for_ledger(logdir, {"r": {1}}, daemon, timeout=60)
    assert accuracies(logdir, "r") == {1: [1.0]}
    assert len(daemon.lines("Too many open files")) == 1, daemon.stderr[-3000:]
    assert not daemon.lines("set aside"), daemon.stderr[-3000:]


def test_a_fuse_direct_io_root_is_read_without_mmap() -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this machine")
    try:
        import fuse  # noqa: F401  (fusepy)
    except ImportError:
        pytest.skip(
            "FUSE is there but no FUSE filesystem library (fusepy) is installed to mount a direct_io root; "
            "segwatch reads dump files with pread only (tests/intake/test_filearrays.py checks no mapping is made), "
            "so a filesystem that cannot mmap changes nothing"
        )
    pytest.skip("a direct_io passthrough mount is not part of this suite yet")
