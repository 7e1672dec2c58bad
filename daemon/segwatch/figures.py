"""Metric figures: the confusion matrix as a heatmap picture and per-class scores as a markdown table. Pure.

The heatmap is row-normalised (each ground-truth class's pixels spread over the predicted classes), so a
perfect model is a dark diagonal whatever the class frequencies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segwatch.lettering import TEXT_HEIGHT, text_mask, text_width
from segwatch.metrics import Scores

__all__ = [
    "ABSENT_ROW",
    "HEAT_HIGH",
    "HEAT_LOW",
    "confusion_heatmap",
    "heat_colours",
    "heatmap_frame",
    "heatmap_indices",
    "iou_table",
]

HEAT_LOW = np.array([255, 255, 255], dtype=np.float64)  # share 0
HEAT_HIGH = np.array([8, 48, 107], dtype=np.float64)  # share 1
ABSENT_ROW = np.array([190, 190, 190], dtype=np.uint8)  # a class with no ground-truth pixels
_INK = np.array([0, 0, 0], dtype=np.uint8)
_MARGIN = 4
_LONGEST_LABEL = 18  # characters of a class name drawn beside the matrix


def heat_colours(shares: np.ndarray) -> np.ndarray:
    """Shares in [0, 1] → uint8 RGB, linear from white to dark blue."""
    shares = np.clip(shares, 0.0, 1.0)[..., np.newaxis]
    return np.rint(HEAT_LOW + (HEAT_HIGH - HEAT_LOW) * shares).astype(np.uint8)


def _cell_size(num_classes: int) -> int:
    return int(np.clip(480 // num_classes, 2, 32))


def confusion_heatmap(
    confusion: np.ndarray, labels: Sequence[str], *, frame: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 picture of a (C, C) confusion matrix, rows normalised; class labels left of the rows
    and above the columns when the cells are tall enough to hold a line of text.

    `frame` is heatmap_frame(labels), for a caller that draws many heatmaps with the same labels."""
    num_classes = confusion.shape[0]
    if confusion.shape != (num_classes, num_classes) or len(labels) != num_classes:
        raise ValueError(
            f"expected a square confusion matrix and one label per class, got shape {confusion.shape} "
            f"and {len(labels)} labels"
        )
    cell = _cell_size(num_classes)
    matrix = _cell_colours(confusion).repeat(cell, axis=0).repeat(cell, axis=1)

    if frame is None:
        frame = heatmap_frame(labels)
    if frame is None:
        return matrix  # too many classes for legible labels: the picture alone
    picture = frame.copy()
    margin = picture.shape[0] - num_classes * cell
    picture[margin:, margin:] = matrix
    return picture


def _cell_colours(confusion: np.ndarray) -> np.ndarray:
    rows = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    shares = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    cells = heat_colours(shares)
    cells[rows[:, 0] == 0] = ABSENT_ROW
    return cells


def heatmap_indices(
    confusion: np.ndarray, labels: Sequence[str], *, frame: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """confusion_heatmap's picture as (H, W) uint8 indices into a (K, 3) palette, which encodes several
    times faster than RGB and decodes to the same pixels; None when it holds more than 256 colours."""
    num_classes = confusion.shape[0]
    if confusion.shape != (num_classes, num_classes) or len(labels) != num_classes:
        raise ValueError(
            f"expected a square confusion matrix and one label per class, got shape {confusion.shape} "
            f"and {len(labels)} labels"
        )
    colours, index = np.unique(_cell_colours(confusion).reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) + 2 > 256:
        return None
    palette = np.concatenate([np.array([[255, 255, 255], _INK], dtype=np.uint8), colours])  # 0 paper, 1 ink
    cell = _cell_size(num_classes)
    cells = (index.reshape(num_classes, num_classes) + 2).astype(np.uint8)
    matrix = cells.repeat(cell, axis=0).repeat(cell, axis=1)
    if frame is None:
        frame = heatmap_frame(labels)
    if frame is None:
        return matrix, palette
    # The frame holds only paper and ink.
    picture = (frame[..., 0] == _INK[0]).astype(np.uint8)
    margin = picture.shape[0] - num_classes * cell
    picture[margin:, margin:] = matrix
    return picture, palette


def heatmap_frame(labels: Sequence[str]) -> np.ndarray | None:
    """The heatmap's picture with its class labels and no cells yet, or None when the cells are too small
    for text. Fixed by the labels alone, so it is drawn once, not every epoch."""
    num_classes = len(labels)
    cell = _cell_size(num_classes)
    if cell < TEXT_HEIGHT + 1:
        return None
    names = [label[:_LONGEST_LABEL] for label in labels]
    margin = max(text_width(name) for name in names) + 2 * _MARGIN
    side = margin + num_classes * cell
    picture = np.full((side, side, 3), 255, dtype=np.uint8)
    for index, name in enumerate(names):
        mask = text_mask(name)
        offset = margin + index * cell + (cell - TEXT_HEIGHT) // 2
        # Row labels right-aligned beside their row; column labels read bottom to top above their column.
        row_left = margin - _MARGIN - mask.shape[1]
        picture[offset : offset + TEXT_HEIGHT, row_left : row_left + mask.shape[1]][mask] = _INK
        column = np.rot90(mask)
        top = margin - _MARGIN - column.shape[0]
        picture[top : top + column.shape[0], offset : offset + TEXT_HEIGHT][column] = _INK
    return picture


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def iou_table(result: Scores, confusion: np.ndarray, labels: Sequence[str]) -> str:
    """Markdown: one row per class (IoU, accuracy, ground-truth pixels), then the means; — where undefined."""
    gt_pixels = confusion.sum(axis=1)
    lines = ["| class | IoU | accuracy | pixels |", "|---|---:|---:|---:|"]
    for class_id, label in enumerate(labels):
        name = label.replace("|", "\\|")
        iou, accuracy = result.iou[class_id], result.class_accuracy[class_id]
        lines.append(f"| {name} | {_cell(iou)} | {_cell(accuracy)} | {int(gt_pixels[class_id])} |")
    lines.append(
        f"| **mean** | **{_cell(result.mean_iou)}** | **{_cell(result.mean_class_accuracy)}** "
        f"| {result.pixels} |"
    )
    return "\n".join(lines)
