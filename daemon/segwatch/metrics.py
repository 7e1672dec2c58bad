"""Segmentation metrics from label maps: confusion matrix, IoU, accuracies, Dice. Pure numpy.

Conventions follow mmsegmentation's: pixels labelled `ignore_index` in the ground truth are left out; a class
that appears in neither ground truth nor prediction has no IoU (not 0, not 1), and mIoU is the mean over the
classes that have one. Nothing here ever returns NaN: absent values are None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from segwatch.filearrays import Stored, paired_chunks

# Pixels per bincount call: large enough to amortise the call, small enough that the int64 index buffer
# stays a few MiB whatever the batch size.
_CHUNK = 1 << 22


def confusion_matrix(
    gt: Stored, pred: Stored, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

    Ground-truth pixels equal to `ignore_index` are skipped. Ids outside [0, num_classes) in either map are
    a caller error (the composer refuses them before metrics run) and raise ValueError.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} and pred shape {pred.shape} differ")
    counts = np.zeros(num_classes * num_classes, dtype=np.int64)
    # Plain numpy chunks, read by offset when the maps are still on disk (each valid until the next).
    for gt_chunk, pred_chunk in paired_chunks(gt, pred, _CHUNK):
        g = gt_chunk.astype(np.int64)
        p = pred_chunk.astype(np.int64)
        if ignore_index is not None:
            keep = g != ignore_index
            g, p = g[keep], p[keep]
        if g.size == 0:
            continue
        low = min(int(g.min()), int(p.min()))
        high = max(int(g.max()), int(p.max()))
        if low < 0 or high >= num_classes:
            raise ValueError(f"class id {low if low < 0 else high} outside [0, {num_classes})")
        counts += np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@dataclass(frozen=True)
class Scores:
    """Per-class and summary metrics of one confusion matrix; None where a value is undefined."""

    iou: tuple[float | None, ...]
    class_accuracy: tuple[float | None, ...]
    dice: tuple[float | None, ...]
    mean_iou: float | None
    pixel_accuracy: float | None
    mean_class_accuracy: float | None
    pixels: int

    @property
    def binary_dice(self) -> float | None:
        """Dice (= F1) of the foreground class of a two-class task."""
        return self.dice[1] if len(self.dice) == 2 else None


def scores(confusion: np.ndarray) -> Scores:
    """Scores of a (C, C) confusion matrix, or of a (C, C + 1) one whose last column counts ground-truth
    pixels predicted as no class (ignore_index): those count against the class but predict none."""
    confusion = confusion.astype(np.float64)
    classes = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] not in (classes, classes + 1):
        raise ValueError(f"confusion must be (C, C) or (C, C + 1), got shape {confusion.shape}")
    intersection = np.diag(confusion[:, :classes])
    gt_area = confusion.sum(axis=1)
    pred_area = confusion[:, :classes].sum(axis=0)
    union = gt_area + pred_area - intersection
    total = float(confusion.sum())
    iou = _ratios(intersection, union)
    class_accuracy = _ratios(intersection, gt_area)
    dice = _ratios(2 * intersection, gt_area + pred_area)
    return Scores(
        iou=iou,
        class_accuracy=class_accuracy,
        dice=dice,
        mean_iou=_mean(iou),
        pixel_accuracy=float(intersection.sum() / total) if total else None,
        mean_class_accuracy=_mean(class_accuracy),
        pixels=int(total),
    )


def _ratios(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float | None, ...]:
    return tuple(float(n / d) if d > 0 else None for n, d in zip(numerator, denominator, strict=True))


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
