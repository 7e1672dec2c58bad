"""The README's recipes, end to end: each layout real training code writes, logged by `segwatch once`, and the
trigger and archive ones followed live by `segwatch run` while a producer writes in that style."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from segwatch.output.ledger import read_document

from conftest import blob_labels, raw_record_counts, read_images

EPOCHS = (1, 2, 3)


def labels(epoch: int, salt: int = 0) -> np.ndarray:
    return blob_labels(np.random.default_rng(epoch * 10 + salt), (2, 16, 16), 5)


def keras_style(root: Path, epoch: int) -> None:
    """A Keras callback: fixed validation labels, one prediction file per epoch, then the checkpoint."""
    (root / "exp" / "preds").mkdir(parents=True, exist_ok=True)
    (root / "exp" / "checkpoints").mkdir(parents=True, exist_ok=True)
    np.save(root / "val" / "gt.npy", labels(0))
    np.save(root / "exp" / "preds" / f"pred_e{epoch:03d}.npy", labels(epoch, 1))
    (root / "exp" / "checkpoints" / f"ckpt-{epoch}.data-00000-of-00001").write_bytes(b"weights")
    (root / "exp" / "checkpoints" / f"ckpt-{epoch}.index").write_bytes(b"index")


def lightning_style(root: Path, epoch: int) -> None:
    """A Lightning callback: one archive per validation, named like the checkpoint that follows it."""
    name = f"epoch={epoch}-step={epoch * 250}"
    (root / "exp" / "val").mkdir(parents=True, exist_ok=True)
    (root / "exp" / "checkpoints").mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / "exp" / "val" / f"{name}.npz", gt=labels(0), pred=labels(epoch, 1))
    (root / "exp" / "checkpoints" / f"{name}.ckpt").write_bytes(b"checkpoint")


def flat_fixed_gt(root: Path, epoch: int) -> None:
    np.save(root / "val" / "gt.npy", labels(0))
    np.save(root / f"pred_{epoch}.npy", labels(epoch, 1))


def archive(root: Path, epoch: int) -> None:
    (root / "exp").mkdir(parents=True, exist_ok=True)
    np.savez(root / "exp" / f"epoch_{epoch}.npz", gt=labels(0), pred=labels(epoch, 1))


def marker(root: Path, epoch: int) -> None:
    directory = root / "exp" / f"epoch_{epoch}"
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "gt.npy", labels(0))
    np.save(directory / "pred.npy", labels(epoch, 1))
    (directory / "_SUCCESS").write_bytes(b"")


RECIPES: dict[str, tuple[dict[str, object], Callable[[Path, int], None], str]] = {
    "keras": (
        {
            "roles": {"gt": "val/gt.npy", "pred": "{run}/preds/pred_e{epoch}.npy"},
            "trigger": "{run}/checkpoints/ckpt-{epoch}.index",
        },
        keras_style,
        "exp",
    ),
    "lightning": (
        {
            "roles": {
                "gt": "{run}/val/epoch={epoch}-step={step}.npz:gt",
                "pred": "{run}/val/epoch={epoch}-step={step}.npz:pred",
            },
            "trigger": "{run}/checkpoints/epoch={epoch}-step={step}.ckpt",
        },
        lightning_style,
        "exp",
    ),
    "flat-fixed-gt": ({"roles": {"gt": "val/gt.npy", "pred": "pred_{epoch}.npy"}}, flat_fixed_gt, ""),
    "npz": ({"pattern": "{run}/epoch_{epoch}.npz:{role}"}, archive, "exp"),
    "marker": ({"trigger": "{run}/epoch_{epoch}/_SUCCESS"}, marker, "exp"),
}


def segwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", *args], capture_output=True, text=True, timeout=120, check=False
    )


def check_logged(logdir: Path, run: str, epochs: tuple[int, ...]) -> None:
    run_dir = logdir / run if run else logdir
    images = read_images(run_dir)["segwatch/grid"]
    assert sorted(images) == list(epochs)
    counts = raw_record_counts(run_dir)
    assert {step for (_, step) in counts} == set(epochs)
    assert set(counts.values()) == {1}
    # Panels differ from epoch to epoch: each epoch's own prediction was read.
    assert len({images[e][0].tobytes() for e in epochs}) == len(epochs)


def make_config(write_config, watch: dict[str, object]) -> Path:
    return write_config(
        watch={**watch, "settle": "100ms"}, compose={"size": [16, 16], "legend": "none", "headers": False}
    )


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_with_segwatch_once(tmp_path, write_config, recipe):
    watch, produce, run = RECIPES[recipe]
    root = tmp_path / "dumps"
    (root / "val").mkdir(parents=True)
    for epoch in EPOCHS:
        produce(root, epoch)
    config = make_config(write_config, watch)
    result = segwatch("once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{len(EPOCHS)} logged"), result.stdout
    check_logged(tmp_path / "tb", run, EPOCHS)
    explained = segwatch("explain", "--config", str(config))
    assert explained.returncode == 0, explained.stderr
    for epoch in EPOCHS:
        assert f"{run or '.'}@{epoch}: done (in the ledger)" in explained.stdout


def ledger_epochs(logdir: Path, run: str) -> set[int]:
    ranges = read_document(logdir)["runs"].get(run, {}).get("done", [])
    return {e for first, last in ranges for e in range(first, last + 1)}


@pytest.mark.parametrize("recipe", ["keras", "lightning", "marker", "npz"])
def test_recipe_followed_live_by_segwatch_run(tmp_path, write_config, recipe):
    watch, produce, run = RECIPES[recipe]
    root = tmp_path / "dumps"
    (root / "val").mkdir(parents=True)
    config = make_config(write_config, watch)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "segwatch", "run", "--config", str(config)], stdout=log, stderr=log
    )
    try:
        for epoch in EPOCHS:
            time.sleep(0.3)
            produce(root, epoch)
        deadline = time.monotonic() + 60
        while ledger_epochs(tmp_path / "tb", run) != set(EPOCHS):
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()
    check_logged(tmp_path / "tb", run, EPOCHS)
