"""`segwatch relog` end to end: a run's history re-rendered with a new config, served by a real TensorBoard
after its restart, the training job's event files untouched, each epoch exactly once even after a kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from boards import Board, tensorboard
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from segwatch.dump import save_epoch
from segwatch.output.ledger import LEDGER_NAME

from conftest import blob_labels, decode_png, get, raw_record_counts, read_images

SIZE = 16
TAG = "segwatch/pairs"
PALETTES = {
    "old": [[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200], [250, 250, 0]],
    "new": [[1, 2, 3], [0, 120, 250], [250, 120, 0], [120, 0, 250], [60, 60, 60]],
    "newest": [[90, 90, 10], [10, 90, 90], [90, 10, 90], [240, 240, 240], [0, 0, 0]],
}


def segwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", *args], capture_output=True, text=True, timeout=180, check=False
    )


def config_with(write_config, palette: str, **compose):
    return write_config(
        compose={
            "layout": "pair",
            "panels": ["gt", "pred"],
            "size": [SIZE, SIZE],
            "resize": "stretch",
            "legend": "none",
            "headers": False,
            "palette": PALETTES[palette],
            **compose,
        },
    )


def write_dump(root: Path, epochs: int, runs=("alpha", "beta"), size: int = SIZE) -> dict:
    rng = np.random.default_rng(21)
    truth = {}
    for run in runs:
        for epoch in range(1, epochs + 1):
            gt = blob_labels(rng, (1, size, size), 5)
            save_epoch(root, epoch, gt=gt, pred=gt, run=run)
            truth[(run, epoch)] = gt[0]
    return truth


def write_training_scalars(run_dir: Path) -> Path:
    """The training job's own event file beside segwatch's, as a Keras TensorBoard callback would leave it."""
    writer = EventFileWriter(str(run_dir))
    for step in range(1, 5):
        value = summary_pb2.Summary.Value(tag="loss", simple_value=1.0 / step)
        writer.add_event(
            event_pb2.Event(step=step, wall_time=time.time(), summary=summary_pb2.Summary(value=[value]))
        )
    writer.close()
    (path,) = [p for p in run_dir.glob("events.out.tfevents.*") if not p.name.endswith(".segwatch")]
    return path


def assert_palette(images: dict[int, list[np.ndarray]], truth: dict, run: str, palette: str) -> None:
    colours = np.array(PALETTES[palette], dtype=np.uint8)
    for epoch, (image, *_) in images.items():
        np.testing.assert_array_equal(image[:, :SIZE], colours[truth[(run, epoch)]], err_msg=f"{run}@{epoch}")


def assert_each_epoch_once(run_dir: Path, epochs: int) -> None:
    counts = raw_record_counts(run_dir)
    segwatch_counts = {key: n for key, n in counts.items() if key[0].startswith("segwatch/")}
    assert set(segwatch_counts.values()) == {1}, segwatch_counts
    assert sorted(step for tag, step in segwatch_counts if tag == TAG) == list(range(1, epochs + 1))


# The legacy loader, reloading every second: the second server must see only the relogged files.
BOARD_FLAGS = ("--samples_per_plugin", "images=1000", "--load_fast=false", "--reload_interval", "1")


def served_images(board: Board, run: str, count: int) -> dict[int, list[np.ndarray]]:
    """The served images of `run`'s tag, once there are `count` steps."""
    base = f"{board.url}/data/plugin/images"
    query = urllib.parse.urlencode({"run": run, "tag": TAG})
    entries: list[dict] = board.until(
        lambda: json.loads(get(f"{base}/images?{query}")), lambda found: len(found) >= count, 120, []
    )
    assert len(entries) == count, entries
    return {entry["step"]: [decode_png(get(f"{base}/individualImage?{entry['query']}"))] for entry in entries}


@pytest.mark.timeout(300)
def test_relog_re_renders_history_and_tensorboard_serves_it_after_a_restart(tmp_path, write_config):
    truth = write_dump(tmp_path / "dumps", epochs=4)
    training_file = write_training_scalars(tmp_path / "tb" / "alpha")
    training_bytes = training_file.read_bytes()
    first = segwatch("once", "--config", str(config_with(write_config, "old")))
    assert first.returncode == 0 and first.stdout.startswith("8 logged"), first.stderr

    with tensorboard(tmp_path / "tb", tmp_path / "tb-1.log", *BOARD_FLAGS) as board:
        assert_palette(served_images(board, "alpha", 4), truth, "alpha", "old")

    # A config change alone logs nothing new: the epochs are done.
    config = config_with(write_config, "new")
    assert segwatch("once", "--config", str(config)).stdout.startswith("0 logged")
    relogged = segwatch("relog", "--config", str(config))
    assert relogged.returncode == 0, relogged.stderr
    assert relogged.stdout.startswith("8 logged"), relogged.stdout

    for run in ("alpha", "beta"):
        run_dir = tmp_path / "tb" / run
        assert_each_epoch_once(run_dir, 4)
        assert_palette(read_images(run_dir)[TAG], truth, run, "new")
        (retired,) = (run_dir / ".segwatch-old").glob("*/*")
        assert "tfevents" not in retired.name and retired.name.endswith(".segwatch")
    # The training job's file is where it was, byte for byte.
    assert training_file.read_bytes() == training_bytes

    with tensorboard(tmp_path / "tb", tmp_path / "tb-2.log", *BOARD_FLAGS) as board:
        assert_palette(served_images(board, "alpha", 4), truth, "alpha", "new")
        assert_palette(served_images(board, "beta", 4), truth, "beta", "new")
        # Nothing of .segwatch-old shows up as a run.
        assert sorted(json.loads(get(f"{board.url}/data/runs"))) == ["alpha", "beta"]


@pytest.mark.timeout(300)
def test_relog_killed_mid_way_ends_with_each_epoch_once(tmp_path, write_config):
    epochs = 30
    truth = write_dump(tmp_path / "dumps", epochs=epochs, runs=("alpha",))
    assert segwatch("once", "--config", str(config_with(write_config, "old"))).returncode == 0
    config = config_with(write_config, "newest")

    relog = subprocess.Popen(
        [sys.executable, "-m", "segwatch", "relog", "--config", str(config), "--run", "alpha"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert relog.stderr is not None
    seen = []
    for line in relog.stderr:
        seen.append(line)
        if "epoch=3 logged" in line:
            relog.send_signal(signal.SIGKILL)
            break
    relog.wait(timeout=60)
    relog.stderr.close()
    assert relog.returncode == -signal.SIGKILL, "".join(seen)
    ledger = json.loads((tmp_path / "tb" / LEDGER_NAME).read_text())
    assert ledger["runs"]["alpha"]["done"] != [[1, epochs]], "the kill came too late to test anything"

    again = segwatch("once", "--config", str(config))
    assert again.returncode == 0, again.stderr

    run_dir = tmp_path / "tb" / "alpha"
    assert_each_epoch_once(run_dir, epochs)
    assert_palette(read_images(run_dir)[TAG], truth, "alpha", "newest")
    assert json.loads((tmp_path / "tb" / LEDGER_NAME).read_text())["runs"]["alpha"]["done"] == [[1, epochs]]
