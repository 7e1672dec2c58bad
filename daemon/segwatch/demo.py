"""`segwatch demo`: a small synthetic training dump, logged to TensorBoard, to see segwatch work in seconds.

Two runs of eight epochs; label maps are smooth blobs (like real masks, so compression is realistic) over a
synthetic image, and predictions get better with every epoch.
"""

from __future__ import annotations

import logging
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
    tints = rng.uniform(0.15, 0.9, size=(len(CLASS_NAMES), 3))
    shade = np.linspace(0.8, 1.1, gt.shape[1])[None, :, None, None]
    images = tints[gt] * shade + rng.normal(0, 0.04, size=(*gt.shape, 3))
    # Real loaders hand out slightly out-of-range floats; segwatch clips them.
    return np.asarray(images, dtype=np.float32)


def write_dump(root: Path, *, seed: int = 0) -> int:
    """Write the demo epochs that are not there yet; returns how many were written."""
    written = 0
    rng = np.random.default_rng(seed)
    truth = np.stack([smooth_fields(rng, len(CLASS_NAMES), SHAPE) for _ in range(BATCH)])
    for run, final_noise in RUNS.items():
        run_rng = np.random.default_rng([seed, len(run)])
        gt, _ = synthetic_batch(run_rng, truth, 0.0)
        images = synthetic_images(run_rng, gt)
        for epoch in range(EPOCHS):
            noise = final_noise + (2.0 - final_noise) * (1 - epoch / (EPOCHS - 1)) ** 2
            _, pred = synthetic_batch(run_rng, truth, noise)
            if epoch_directory(root, epoch, run).exists():
                continue
            save_epoch(root, epoch, gt=gt, pred=pred, image=images, run=run)
            written += 1
    return written


def demo_config(dumps: Path, logdir: Path) -> dict[str, object]:
    return {
        "watch": {"root": str(dumps.resolve()), "pattern": "{run}/epoch_{epoch}/{role}.npy"},
        "tensorboard": {"logdir": str(logdir.resolve()), "tag_prefix": "segwatch"},
        "compose": {
            "layout": "grid",
            "panels": ["image", "gt", "pred", "overlay", "error"],
            "size": [96, 128],
            "columns": 1,
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
