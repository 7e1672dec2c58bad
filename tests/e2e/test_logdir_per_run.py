"""`{run}` in tensorboard.logdir: segwatch's images beside a training job's own scalars, in one run directory,
logged exactly once across restarts and served together by a real TensorBoard process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from boards import tensorboard

from segwatch.dump import save_epoch
from segwatch.output.ledger import LEDGER_NAME
from segwatch.output.sink import EVENT_FILE_MARK

from conftest import blob_labels, get, raw_record_counts, read_images

RUNS = ("alpha", "beta")
EPOCHS = (1, 2, 5)
IMAGE_TAG = "segwatch/pairs"
# The trainer logs far beyond segwatch's epochs: were recovery to read its file, every epoch would look late.
TRAINER_STEPS = tuple(range(0, 1001, 100))


def segwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", *args], capture_output=True, text=True, timeout=120, check=False
    )


def write_training_curves(run_dir: Path) -> None:
    """What a training job logs itself: a plain summary writer with a scalar."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        for step in TRAINER_STEPS:
            tf.summary.scalar("loss", 1.0 / (step + 1), step=step)
    writer.close()


def dump_epoch(root: Path, run: str, epoch: int, rng: np.random.Generator) -> None:
    gt = blob_labels(rng, (2, 16, 16), 5)
    save_epoch(root, epoch, gt=gt, pred=blob_labels(rng, (2, 16, 16), 5), run=run)


@pytest.fixture
def setup(tmp_path, write_config):
    rng = np.random.default_rng(3)
    for run in RUNS:
        write_training_curves(tmp_path / "runs" / run / "tb")
        for epoch in EPOCHS:
            dump_epoch(tmp_path / "dumps", run, epoch, rng)
    config = write_config(
        tensorboard={"logdir": str(tmp_path / "runs" / "{run}" / "tb")},
        compose={
            "layout": "pair",
            "panels": ["gt", "pred"],
            "size": [16, 16],
            "legend": "none",
            "headers": False,
        },
    )
    return tmp_path, config


def segwatch_counts(run_dir: Path) -> dict[tuple[str, int], int]:
    return {key: count for key, count in raw_record_counts(run_dir).items() if key[0].startswith("segwatch/")}


def test_once_twice_nothing_new_beside_the_trainer(setup):
    tmp_path, config = setup
    first = segwatch("once", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("6 logged"), first.stdout

    for run in RUNS:
        run_dir = tmp_path / "runs" / run / "tb"
        assert sorted(read_images(run_dir)[IMAGE_TAG]) == list(EPOCHS)
        assert (run_dir / LEDGER_NAME).is_file()
        ours = sorted(run_dir.glob(f"events.out.tfevents.*{EVENT_FILE_MARK}"))
        assert len(ours) == 1 and len(list(run_dir.glob("events.out.tfevents.*"))) == 2
        assert raw_record_counts(run_dir)[("loss", 100)] == 1
    assert not (tmp_path / "runs" / LEDGER_NAME).exists()
    before = {run: segwatch_counts(tmp_path / "runs" / run / "tb") for run in RUNS}
    assert all(count == 1 for counts in before.values() for count in counts.values())

    second = segwatch("once", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("0 logged") and "6 already done" in second.stdout, second.stdout
    assert {run: segwatch_counts(tmp_path / "runs" / run / "tb") for run in RUNS} == before


def test_a_deleted_ledger_is_rebuilt_from_segwatchs_own_files(setup):
    tmp_path, config = setup
    assert segwatch("once", "--config", str(config)).returncode == 0
    for run in RUNS:
        (tmp_path / "runs" / run / "tb" / LEDGER_NAME).unlink()
    dump_epoch(tmp_path / "dumps", "alpha", 6, np.random.default_rng(9))

    again = segwatch("once", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("1 logged") and "6 already done" in again.stdout, again.stdout
    alpha = tmp_path / "runs" / "alpha" / "tb"
    assert sorted(read_images(alpha)[IMAGE_TAG]) == [*EPOCHS, 6]
    for run in RUNS:
        counts = segwatch_counts(tmp_path / "runs" / run / "tb")
        assert counts and all(count == 1 for count in counts.values())
        assert (tmp_path / "runs" / run / "tb" / LEDGER_NAME).is_file()


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "loader",
    [["--load_fast=true"], ["--load_fast=false", "--reload_multifile=true"]],
    ids=["rust-loader", "python-loader-multifile"],
)
def test_tensorboard_serves_the_trainers_scalars_and_segwatchs_images(setup, loader):
    tmp_path, config = setup
    assert segwatch("once", "--config", str(config)).returncode == 0
    flags = ("--samples_per_plugin", "images=1000,scalars=1000", *loader)
    with tensorboard(tmp_path / "runs", tmp_path / "tensorboard.log", *flags) as board:
        base = f"{board.url}/data/plugin"
        served: dict[str, tuple[list, list]] = board.until(
            lambda: {
                run: (
                    json.loads(get(f"{base}/scalars/scalars?" + query(run, "loss"))),
                    json.loads(get(f"{base}/images/images?" + query(run, IMAGE_TAG))),
                )
                for run in RUNS
            },
            lambda found: all(
                len(s) == len(TRAINER_STEPS) and len(i) == len(EPOCHS) for s, i in found.values()
            ),
            150,
            {},
        )
        for run in RUNS:
            scalars, images = served.get(run, ([], []))
            assert [step for _, step, _ in scalars] == list(TRAINER_STEPS)
            assert sorted(entry["step"] for entry in images) == list(EPOCHS)


def query(run: str, tag: str) -> str:
    return urllib.parse.urlencode({"run": f"{run}/tb", "tag": tag})
