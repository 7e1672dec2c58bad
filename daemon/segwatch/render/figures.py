"""Metric figures: the confusion matrix as a heatmap picture and per-class scores as a markdown table. Pure.

The heatmap is row-normalised (each ground-truth class's pixels spread over the predicted classes), so a
perfect model is a dark diagonal whatever the class frequencies. It carries its own axis titles, class names,
a colour scale and, when the cells are large enough, each cell's share in percent. It is drawn at least
TARGET_WIDTH px wide, more than any TensorBoard card, so TensorBoard only ever scales it down (an upscaled
picture blurs its text); its text is sized for the card it will be shown in.

Everything that depends only on the class names (titles, names, scale) is drawn once per set of names and
cached; each epoch only fills the cells.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segwatch.metrics.confusion import Scores
from segwatch.render.lettering import CARD_WIDTH, line_height, text_coverage, text_width

__all__ = [
    "ABSENT_ROW",
    "HEAT_HIGH",
    "HEAT_LOW",
    "TARGET_WIDTH",
    "HeatmapLayout",
    "confusion_heatmap",
    "heat_colours",
    "heatmap_layout",
    "iou_table",
]

HEAT_LOW = np.array([255, 255, 255], dtype=np.float64)  # share 0
HEAT_HIGH = np.array([8, 48, 107], dtype=np.float64)  # share 1
ABSENT_ROW = np.array([190, 190, 190], dtype=np.uint8)  # a class with no ground-truth pixels
_INK = np.array([20, 20, 20], dtype=np.float64)
_PAPER = 255
TARGET_WIDTH = 800  # px: wider than TensorBoard's cards (350 px in the Images tab, ~460 in Time Series)
_LONGEST_LABEL = 18  # characters of a class name drawn beside the matrix
_TITLE_SCREEN_PX = 14  # on-screen size of axis titles and class names at CARD_WIDTH
_SMALLEST_NAME = 9  # px: below this, class names are left out (too many classes) and only titles remain


def heat_colours(shares: np.ndarray) -> np.ndarray:
    """Shares in [0, 1] → uint8 RGB, linear from white to dark blue."""
    shares = np.clip(shares, 0.0, 1.0)[..., np.newaxis]
    return np.rint(HEAT_LOW + (HEAT_HIGH - HEAT_LOW) * shares).astype(np.uint8)


@dataclass(frozen=True)
class HeatmapLayout:
    size: int  # font size of titles and class names
    value_size: int  # font size of the cell values, 0 when they do not fit
    cell: int  # side of a cell, px
    top: int  # matrix's top edge
    left: int  # matrix's left edge
    scale_left: int  # colour scale bar's left edge
    scale_width: int
    height: int
    width: int
    names: tuple[str, ...]  # () when the cells are too small for names


def _name_room(names: Sequence[str], size: int) -> int:
    return max((text_width(name, size) for name in names), default=0)


@functools.lru_cache(maxsize=32)
def _layout(labels: tuple[str, ...]) -> HeatmapLayout:
    count = len(labels)
    names = tuple(label[:_LONGEST_LABEL] for label in labels)
    size = max(_SMALLEST_NAME, round(_TITLE_SCREEN_PX * TARGET_WIDTH / CARD_WIDTH))
    pad = size // 3
    title = line_height(size) + pad

    def frame(size: int, shown: tuple[str, ...]) -> tuple[int, int, int]:
        margin = title + _name_room(shown, size) + 2 * pad  # left (and top: names are rotated there)
        scale = size + pad + text_width("100%", size) + 2 * pad
        return margin, margin, scale

    # Largest name size whose line fits a cell when the matrix fills TARGET_WIDTH.
    shown = names
    while True:
        left, top, scale = frame(size, shown)
        cell = (TARGET_WIDTH - left - scale) // count
        if cell >= line_height(size) or size <= _SMALLEST_NAME:
            break
        size -= 1
    if cell < line_height(size):
        shown = ()
        size = max(_SMALLEST_NAME, round(_TITLE_SCREEN_PX * TARGET_WIDTH / CARD_WIDTH))
        pad, title = size // 3, line_height(size) + size // 3
        left, top, scale = frame(size, shown)
        cell = max(1, (TARGET_WIDTH - left - scale) // count)
    value_size = size
    while value_size > _SMALLEST_NAME and (
        text_width("100", value_size) + 4 > cell or line_height(value_size) > cell
    ):
        value_size -= 1
    if text_width("100", value_size) + 4 > cell or line_height(value_size) > cell:
        value_size = 0
    matrix = count * cell
    scale_left = left + matrix + 2 * pad
    width = scale_left + scale - 2 * pad
    return HeatmapLayout(
        size, value_size, cell, top, left, scale_left, size, top + matrix + pad, width, shown
    )


def heatmap_layout(labels: Sequence[str]) -> HeatmapLayout:
    """Where everything of a heatmap for these class labels goes (one label per class)."""
    return _layout(tuple(labels))


def _paint(picture: np.ndarray, coverage: np.ndarray, top: int, left: int, ink: np.ndarray = _INK) -> None:
    height = min(coverage.shape[0], picture.shape[0] - top)
    width = min(coverage.shape[1], picture.shape[1] - left)
    if height <= 0 or width <= 0 or top < 0 or left < 0:
        return
    alpha = coverage[:height, :width, None].astype(np.float32) / 255
    region = picture[top : top + height, left : left + width]
    region[...] = np.rint(region * (1 - alpha) + ink * alpha).astype(np.uint8)


@functools.lru_cache(maxsize=32)
def _frame(labels: tuple[str, ...]) -> np.ndarray:
    """The picture without its cells: titles, class names and the colour scale."""
    layout = _layout(labels)
    size, cell, count = layout.size, layout.cell, len(labels)
    pad = size // 3
    picture = np.full((layout.height, layout.width, 3), _PAPER, dtype=np.uint8)
    matrix = count * cell
    # Axis titles: prediction across the top, ground truth up the left side.
    across = text_coverage("prediction", size)
    _paint(picture, across, 0, layout.left + max(0, (matrix - across.shape[1]) // 2))
    up = np.rot90(text_coverage("ground truth", size))
    _paint(picture, up, layout.top + max(0, (matrix - up.shape[0]) // 2), 0)
    name_h = line_height(size)
    for index, name in enumerate(layout.names):
        mask = text_coverage(name, size)
        offset = index * cell + (cell - name_h) // 2
        # Row names right-aligned beside their row; column names read bottom to top above their column.
        _paint(picture, mask, layout.top + offset, layout.left - pad - mask.shape[1])
        column = np.rot90(mask)
        _paint(picture, column, layout.top - pad - column.shape[0], layout.left + offset)
    # Colour scale: share 1 at the top, 0 at the bottom, labelled at both ends and the middle.
    shares = np.linspace(1.0, 0.0, matrix)[:, None]
    bar = heat_colours(np.repeat(shares, layout.scale_width, axis=1))
    picture[layout.top : layout.top + matrix, layout.scale_left : layout.scale_left + layout.scale_width] = (
        bar
    )
    edge = picture[
        layout.top : layout.top + matrix, layout.scale_left : layout.scale_left + layout.scale_width
    ]
    edge[[0, -1], :] = _INK.astype(np.uint8)
    edge[:, [0, -1]] = _INK.astype(np.uint8)
    for text, at in (("100%", 0), ("50%", matrix // 2 - name_h // 2), ("0%", matrix - name_h)):
        _paint(
            picture, text_coverage(text, size), layout.top + at, layout.scale_left + layout.scale_width + pad
        )
    picture.flags.writeable = False
    return picture


def confusion_heatmap(confusion: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(H, W, 3) uint8 picture of a (C, C) confusion matrix, rows normalised, with axis titles, class names
    (when there is room), cell values in percent (when they fit) and a colour scale."""
    num_classes = confusion.shape[0]
    if confusion.shape != (num_classes, num_classes) or len(labels) != num_classes:
        raise ValueError(
            f"expected a square confusion matrix and one label per class, got shape {confusion.shape} "
            f"and {len(labels)} labels"
        )
    key = tuple(labels)
    layout = _layout(key)
    picture = _frame(key).copy()
    rows = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    shares = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    cells = heat_colours(shares)
    cells[rows[:, 0] == 0] = ABSENT_ROW
    cell = layout.cell
    matrix = cells.repeat(cell, axis=0).repeat(cell, axis=1)
    picture[layout.top : layout.top + matrix.shape[0], layout.left : layout.left + matrix.shape[1]] = matrix
    if layout.value_size:
        value_h = line_height(layout.value_size)
        for gt, pred in zip(*np.nonzero(confusion), strict=True):
            share = shares[gt, pred]
            text = f"{share * 100:.0f}" if share >= 0.005 else "<1"
            mask = text_coverage(text, layout.value_size)
            ink = np.array([255.0, 255.0, 255.0]) if share > 0.45 else _INK
            _paint(
                picture,
                mask,
                layout.top + gt * cell + (cell - value_h) // 2,
                layout.left + pred * cell + (cell - mask.shape[1]) // 2,
                ink,
            )
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
