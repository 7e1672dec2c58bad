"""`segwatch demo`: a small synthetic training dump, logged to TensorBoard, to see segwatch work in seconds.

Two runs of eight epochs over the same validation batch: the same input images and ground truth in both runs
(as in a real comparison of two models), label maps of smooth blobs (like real masks, so compression is
realistic), predictions that get better with every epoch. `segwatch demo --live` plays a training job that
writes one epoch of each run a second while a real `segwatch run` daemon follows it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from segwatch.dump import epoch_directory, save_epoch

log = logging.getLogger(__name__)

CLASS_NAMES = ["background", "road", "building", "vegetation", "sky", "person"]
RUNS = {"baseline": 0.5, "wider-decoder": 0.25}  # how much noise is left in predictions at the last epoch
EPOCHS = 8
BATCH = 4
SHAPE = (96, 128)


def smooth_fields(rng: np.random.Generator, count: int, shape: tuple[int, int], cell: int = 16) -> np.ndarray:
    """`count` smooth random fields of `shape`: coarse noise, bilinearly upsampled."""
    height, width = shape
    coarse = rng.standard_normal((count, height // cell + 2, width // cell + 2))
    ys = np.arange(height) / cell
    xs = np.arange(width) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[:, y0][:, :, x0] * (1 - fx) + coarse[:, y0][:, :, x0 + 1] * fx
    bottom = coarse[:, y0 + 1][:, :, x0] * (1 - fx) + coarse[:, y0 + 1][:, :, x0 + 1] * fx
    return np.asarray(top * (1 - fy) + bottom * fy)


def synthetic_batch(
    rng: np.random.Generator, truth_fields: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth from `truth_fields` (N, C, H, W), and a prediction whose errors grow with `noise`."""
    gt = truth_fields.argmax(axis=1).astype(np.uint8)
    nuisance = np.stack(
        [smooth_fields(rng, truth_fields.shape[1], truth_fields.shape[2:], cell=8) for _ in gt]
    )
    pred = (truth_fields + noise * nuisance).argmax(axis=1).astype(np.int64)
    return gt, pred


def synthetic_images(rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] whose regions follow the ground truth, with shading and sensor noise."""
    # Muted, photo-like tones: mostly the region's brightness, a little colour.
    tints = rng.uniform(0.15, 0.9, size=(len(CLASS_NAMES), 3))
    tints = 0.45 * tints + 0.55 * tints.mean(axis=1, keepdims=True)
    shade = np.linspace(0.8, 1.1, gt.shape[1])[None, :, None, None]
    images = tints[gt] * shade + rng.normal(0, 0.04, size=(*gt.shape, 3))
    # Real loaders hand out slightly out-of-range floats; segwatch clips them.
    return np.asarray(images, dtype=np.float32)


def epoch_arrays(*, seed: int = 0) -> Iterator[tuple[str, int, np.ndarray, np.ndarray, np.ndarray]]:
    """(run, epoch, gt, pred, image) of every demo epoch, in the order a training job would write them:
    epoch by epoch, each run in turn. Both runs share the batch: its ground truth and its input images."""
    rng = np.random.default_rng(seed)
    truth = np.stack([smooth_fields(rng, len(CLASS_NAMES), SHAPE) for _ in range(BATCH)])
    gt = truth.argmax(axis=1).astype(np.uint8)
    images = synthetic_images(np.random.default_rng([seed, 1]), gt)
    run_rngs = {run: np.random.default_rng([seed, len(run)]) for run in RUNS}
    for epoch in range(EPOCHS):
        for run, final_noise in RUNS.items():
            noise = final_noise + (2.0 - final_noise) * (1 - epoch / (EPOCHS - 1)) ** 2
            _, pred = synthetic_batch(run_rngs[run], truth, noise)
            yield run, epoch, gt, pred, images


def write_epoch(
    root: Path, run: str, epoch: int, gt: np.ndarray, pred: np.ndarray, image: np.ndarray
) -> bool:
    """Write one demo epoch as a training job would (`save_epoch`); False if it is there already."""
    if epoch_directory(root, epoch, run).exists():
        return False
    save_epoch(root, epoch, gt=gt, pred=pred, image=image, run=run)
    return True


def write_dump(root: Path, *, seed: int = 0) -> int:
    """Write the demo epochs that are not there yet; returns how many were written."""
    return sum(write_epoch(root, *arrays) for arrays in epoch_arrays(seed=seed))


def demo_config(dumps: Path, logdir: Path) -> dict[str, object]:
    return {
        "watch": {"root": str(dumps.resolve()), "pattern": "{run}/epoch_{epoch}/{role}.npy"},
        "tensorboard": {"logdir": str(logdir.resolve()), "tag_prefix": "segwatch"},
        "compose": {
            "layout": "grid",
            "panels": ["image", "gt", "pred", "overlay", "error"],
            "size": [96, 128],
            "columns": "auto",
            "max_items": BATCH,
            "palette": "voc",
            "num_classes": len(CLASS_NAMES),
            "class_names": CLASS_NAMES,
            "ignore_index": 255,
            "legend": "all",
        },
        "metrics": {"enabled": True, "confusion_matrix": True, "per_class": True},
    }


def write_config(path: Path, config: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `segwatch demo`; follow the demo dump live with: segwatch run --config "
        + path.name
        + "\n"
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
