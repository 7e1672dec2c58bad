"""The pipeline benchmark's workloads W1-W5: one artifact of `.npy` files each, generated with a fixed seed.

Label maps are made of smooth blobs (drawn at 1/4 resolution, so boundaries are 4-px stairs) with ignore
(255) bands along class boundaries, and a prediction that mostly agrees: PNG compression and run lengths
behave as on real validation masks.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segwatch.dump import save_epoch
from segwatch.intake.layout import Artifact

DATA_VERSION = "1"  # bump when the generated workloads change, so a reused --workdir is regenerated
SEED = 20240229
MiB = 1 << 20


@dataclass(frozen=True)
class Workload:
    name: str
    num_classes: int
    palette: str
    panel: tuple[int, int]  # (height, width)
    columns: int
    items: int
    layout: str = "grid"  # or "pair"
    resize: str = "stretch"  # seed: "stretch" uses tf.image.resize, "letterbox" tf.image.resize_with_pad
    split_items: bool = False  # one file per item (gt_0.npy, ...) instead of one batch file
    logits: bool = False
    compose: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return SUMMARIES[self.name]

    def compose_config(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "size": list(self.panel),
            "columns": self.columns,
            "max_items": max(self.items, 1),
            "num_classes": self.num_classes,
            "palette": self.palette,
            "ignore_index": 255,
            "resize": "letterbox",
            "class_axis": "first",
            **self.compose,
        }


VOC: dict[str, Any] = {"num_classes": 21, "palette": "voc"}
CITYSCAPES: dict[str, Any] = {"num_classes": 19, "palette": "cityscapes"}
SQUARE, WIDE = (256, 256), (256, 512)

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("W1", **VOC, panel=SQUARE, columns=1, items=1, layout="pair"),
        Workload("W2", **CITYSCAPES, panel=WIDE, columns=4, items=16),
        Workload("W3", **VOC, panel=SQUARE, columns=4, items=8, resize="letterbox", split_items=True),
        Workload("W4", **VOC, panel=(128, 128), columns=8, items=64),
        Workload("W5", **CITYSCAPES, panel=WIDE, columns=4, items=8, logits=True),
    )
}
SUMMARIES = {
    "W1": "1 pair 512x512 uint8, VOC 21 + ignore -> one side-by-side image, 256x256 panels",
    "W2": "16 pairs 1024x2048 (gt uint8 + ignore 255, pred int64), Cityscapes 19 -> 4x4 grid, 256x512 panels",
    "W3": "8 pairs, shapes 300-700 px per side, int64, one file per item, VOC 21 -> letterboxed, "
    "4x2 grid, 256x256 panels",
    "W4": "64 pairs 512x512 uint8, VOC 21 + ignore -> 8x8 grid, 128x128 panels",
    "W5": "logits (8, 19, 512, 1024) float16 + gt uint8, Cityscapes -> argmax, 4x2 grid, 256x512 panels",
}


def _interpolation(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in) matrix of linear interpolation weights from a coarse axis to a fine one."""
    position = np.linspace(0.0, size_in - 1, size_out)
    low = np.minimum(np.floor(position).astype(np.intp), size_in - 2)
    weight = (position - low).astype(np.float32)
    matrix = np.zeros((size_out, size_in), dtype=np.float32)
    matrix[np.arange(size_out), low] = 1 - weight
    matrix[np.arange(size_out), low + 1] = weight
    return matrix


def smooth_field(rng: np.random.Generator, classes: int, shape: tuple[int, int], cell: int) -> np.ndarray:
    """(classes, H, W) float32: coarse Gaussian noise, one sample per `cell` px, bilinearly upsampled."""
    height, width = shape
    coarse = rng.standard_normal((classes, max(2, height // cell + 2), max(2, width // cell + 2)))
    coarse = coarse.astype(np.float32)
    return _interpolation(height, coarse.shape[1]) @ coarse @ _interpolation(width, coarse.shape[2]).T


# Label maps are drawn at 1/STEP resolution and upsampled by repetition: blob boundaries are STEP-px stairs.
STEP = 4


def _upsample(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = array.repeat(STEP, axis=-2).repeat(STEP, axis=-1)
    return up[..., : shape[0], : shape[1]]


def label_pair(
    rng: np.random.Generator, classes: int, shape: tuple[int, int], *, ignore_band: float = 0.06
) -> tuple[np.ndarray, np.ndarray]:
    """A gt blob map with ignore (255) bands along class boundaries, and a prediction that mostly agrees."""
    coarse_shape = (-(-shape[0] // STEP), -(-shape[1] // STEP))
    cell = max(8, min(coarse_shape) // 3)
    truth = smooth_field(rng, classes, coarse_shape, cell)
    gt = truth.argmax(axis=0).astype(np.uint8)
    top_two = np.partition(truth, classes - 2, axis=0)[-2:]
    gt[(top_two[1] - top_two[0]) < ignore_band] = 255
    guess = truth + 0.5 * smooth_field(rng, classes, coarse_shape, max(4, cell // 3))
    pred = guess.argmax(axis=0).astype(np.uint8)
    return _upsample(gt, shape), _upsample(pred, shape)


def generate(workload: Workload, root: Path) -> None:
    rng = np.random.default_rng([SEED, int(workload.name[1:])])
    n, classes = workload.items, workload.num_classes
    if workload.name == "W1":
        gt, pred = label_pair(rng, classes, (512, 512))
        save_epoch(root, 1, gt=gt, pred=pred, run=workload.name)
    elif workload.name == "W2":
        gt = np.empty((n, 1024, 2048), dtype=np.uint8)
        pred = np.empty((n, 1024, 2048), dtype=np.int64)
        for i in range(n):
            gt[i], pred[i] = label_pair(rng, classes, (1024, 2048))
        save_epoch(root, 1, gt=gt, pred=pred, run=workload.name)
    elif workload.name == "W3":
        shapes = rng.integers(300, 701, size=(n, 2))
        pairs = [label_pair(rng, classes, (int(h), int(w))) for h, w in shapes]
        save_epoch(
            root,
            1,
            gt=[g.astype(np.int64) for g, _ in pairs],
            pred=[p.astype(np.int64) for _, p in pairs],
            run=workload.name,
        )
    elif workload.name == "W4":
        gt = np.empty((n, 512, 512), dtype=np.uint8)
        pred = np.empty_like(gt)
        for i in range(n):
            gt[i], pred[i] = label_pair(rng, classes, (512, 512))
        save_epoch(root, 1, gt=gt, pred=pred, run=workload.name)
    elif workload.name == "W5":
        shape = (512, 1024)
        coarse_shape = (shape[0] // STEP, shape[1] // STEP)
        gt = np.empty((n, *shape), dtype=np.uint8)
        logits = np.empty((n, classes, *shape), dtype=np.float16)
        for i in range(n):
            truth = smooth_field(rng, classes, coarse_shape, 40)
            labels = truth.argmax(axis=0).astype(np.uint8)
            top_two = np.partition(truth, classes - 2, axis=0)[-2:]
            labels[(top_two[1] - top_two[0]) < 0.06] = 255
            gt[i] = _upsample(labels, shape)
            scores = 4.0 * (truth + 0.5 * smooth_field(rng, classes, coarse_shape, 13))
            logits[i] = _upsample(scores.astype(np.float16), shape)
        save_epoch(root, 1, gt=gt, pred=logits, run=workload.name)
    else:
        raise ValueError(f"unknown workload {workload.name!r}")


def artifact_of(workload: Workload, data: Path) -> Artifact:
    directory = data / workload.name / "epoch_1"
    if workload.split_items:
        files = {
            role: tuple(str(directory / f"{role}_{i}.npy") for i in range(workload.items))
            for role in ("gt", "pred")
        }
    else:
        files = {role: (str(directory / f"{role}.npy"),) for role in ("gt", "pred")}
    for paths in files.values():
        for path in paths:
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} is missing: the workload data is incomplete")
    return Artifact(workload.name, 1, files)


def prepare_data(workdir: Path, workloads: Sequence[Workload], log: Callable[[str], None]) -> Path:
    data = workdir / "data"
    for workload in workloads:
        marker = data / f".{workload.name}.v{DATA_VERSION}"
        if marker.exists():
            continue
        shutil.rmtree(data / workload.name, ignore_errors=True)
        started = time.perf_counter()
        generate(workload, data)
        marker.touch()
        log(f"generated {workload.name} in {time.perf_counter() - started:.1f} s")
    return data


def warm_page_cache(artifact: Artifact) -> int:
    """Read every file once so timings start from a warm page cache; returns the bytes read."""
    total = 0
    for path in artifact.paths():
        with open(path, "rb") as handle:
            while chunk := handle.read(8 * MiB):
                total += len(chunk)
    return total
