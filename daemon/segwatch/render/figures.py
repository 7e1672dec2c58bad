"""Metric figures: the confusion matrix as a heatmap picture and per-class scores as a markdown table. Pure.

The heatmap is row-normalised (each ground-truth class's pixels spread over the predicted classes), so a
perfect model is a dark diagonal whatever the class frequencies. It carries its own axis titles, class names,
a colour scale and, when the cells are large enough, each cell's share in percent. It is drawn at least
TARGET_WIDTH px wide, more than any TensorBoard card, so TensorBoard only ever scales it down (an upscaled
picture blurs its text); its text is sized for the card it will be shown in.

The picture is 8-bit paletted, like the label composites, because it is written every epoch: shares are
quantised to RAMP_LEVELS colours of the ramp and text to lettering's TEXT_LEVELS ink levels, so every pixel is
one of HEATMAP_PALETTE's entries and it encodes as fast as a label map (an RGB encode cost 5x more). Everything
that depends only on the class names (titles, names, scale) is drawn once per set of names and cached; each
epoch fills the cells, and each cell's value text is a cached block of indices.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from segwatch.render.lettering import CARD_WIDTH, TEXT_LEVELS, line_height, text_levels, text_width

if TYPE_CHECKING:
    from segwatch.metrics.confusion import Scores

__all__ = [
    "ABSENT_ROW",
    "HEATMAP_PALETTE",
    "HEAT_HIGH",
    "HEAT_LOW",
    "RAMP_LEVELS",
    "TARGET_WIDTH",
    "HeatmapLayout",
    "cell_text",
    "confusion_heatmap",
    "heat_colours",
    "heat_levels",
    "heatmap_indices",
    "heatmap_layout",
    "iou_table",
]

HEAT_LOW = np.array([255, 255, 255], dtype=np.float64)  # share 0
HEAT_HIGH = np.array([8, 48, 107], dtype=np.float64)  # share 1
ABSENT_ROW = np.array([190, 190, 190], dtype=np.uint8)  # a class with no ground-truth pixels
_INK = np.array([20, 20, 20], dtype=np.float64)
_WHITE_INK = np.array([255, 255, 255], dtype=np.float64)
_LIGHT_INK_ABOVE = 0.45  # share above which a cell's value is written in white
# Shares are shown in RAMP_LEVELS steps (1.2 % apart; the cells print the share itself): the ramp, two faint ink
# levels over each ramp colour, full dark and white ink and the absent row's grey fill the 256 palette entries.
RAMP_LEVELS = 84
TARGET_WIDTH = 800  # px: wider than TensorBoard's cards (350 px in the Images tab, ~460 in Time Series)
_LONGEST_LABEL = 18  # characters of a class name drawn beside the matrix
_TITLE_SCREEN_PX = 14  # on-screen size of axis titles and class names at CARD_WIDTH
_SMALLEST_NAME = 9  # px: below this, class names are left out (too many classes) and only titles remain


def heat_levels(shares: np.ndarray) -> np.ndarray:
    """Shares in [0, 1] → their step of the colour ramp, 0 (white) .. RAMP_LEVELS - 1 (dark blue)."""
    return np.rint(np.clip(shares, 0.0, 1.0) * (RAMP_LEVELS - 1)).astype(np.intp)


def _palette() -> tuple[np.ndarray, np.ndarray]:
    """The heatmap's palette, and for each ramp step the indices of its text levels 0..TEXT_LEVELS (0: the
    step's own colour, then faint to full ink: dark ink on light steps, white on dark ones)."""
    ramp = HEAT_LOW + (HEAT_HIGH - HEAT_LOW) * np.linspace(0.0, 1.0, RAMP_LEVELS)[:, None]
    faint = TEXT_LEVELS - 1  # levels between the backdrop and full ink
    dark_ink, white_ink = RAMP_LEVELS * (1 + faint), RAMP_LEVELS * (1 + faint) + 1
    colours = [ramp]
    levels = np.empty((RAMP_LEVELS, TEXT_LEVELS + 1), dtype=np.uint8)
    for step in range(RAMP_LEVELS):
        light = step / (RAMP_LEVELS - 1) > _LIGHT_INK_ABOVE
        ink = _WHITE_INK if light else _INK
        first = RAMP_LEVELS + step * faint
        colours.append(ramp[step] + (ink - ramp[step]) * (np.arange(1, faint + 1)[:, None] / TEXT_LEVELS))
        levels[step] = [step, *range(first, first + faint), white_ink if light else dark_ink]
    colours += [_INK[None], _WHITE_INK[None], ABSENT_ROW[None].astype(np.float64)]  # then the absent row
    palette = np.rint(np.concatenate(colours)).astype(np.uint8)
    if len(palette) > 256:
        raise AssertionError(f"the heatmap needs {len(palette)} colours, a PNG palette holds 256")
    palette.flags.writeable = False
    levels.flags.writeable = False
    return palette, levels


HEATMAP_PALETTE, _TEXT_INDICES = _palette()
_ABSENT_INDEX = len(HEATMAP_PALETTE) - 1
_DARK_INK_INDEX = _ABSENT_INDEX - 2
_PAPER_INDEX = 0  # share 0 is white


def heat_colours(shares: np.ndarray) -> np.ndarray:
    """Shares in [0, 1] → uint8 RGB as drawn: the colour of their ramp step, from white to dark blue."""
    return HEATMAP_PALETTE[heat_levels(shares)]


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


def _paint(picture: np.ndarray, levels: np.ndarray, top: int, left: int, step: int = _PAPER_INDEX) -> None:
    """Write text (lettering's ink levels) at (top, left) over ramp step `step`, clipped to the picture."""
    height = min(levels.shape[0], picture.shape[0] - top)
    width = min(levels.shape[1], picture.shape[1] - left)
    if height <= 0 or width <= 0 or top < 0 or left < 0:
        return
    region = picture[top : top + height, left : left + width]
    inked = _TEXT_INDICES[step][levels[:height, :width]]
    np.copyto(region, inked, where=levels[:height, :width] > 0)


@functools.lru_cache(maxsize=32)
def _frame(labels: tuple[str, ...]) -> np.ndarray:
    """The picture's palette indices without its cells: titles, class names and the colour scale."""
    layout = _layout(labels)
    size, cell, count = layout.size, layout.cell, len(labels)
    pad = size // 3
    picture = np.full((layout.height, layout.width), _PAPER_INDEX, dtype=np.uint8)
    matrix = count * cell
    # Axis titles: prediction across the top, ground truth up the left side.
    across = text_levels("prediction", size)
    _paint(picture, across, 0, layout.left + max(0, (matrix - across.shape[1]) // 2))
    up = np.rot90(text_levels("ground truth", size))
    _paint(picture, up, layout.top + max(0, (matrix - up.shape[0]) // 2), 0)
    name_h = line_height(size)
    for index, name in enumerate(layout.names):
        mask = text_levels(name, size)
        offset = index * cell + (cell - name_h) // 2
        # Row names right-aligned beside their row; column names read bottom to top above their column.
        _paint(picture, mask, layout.top + offset, layout.left - pad - mask.shape[1])
        column = np.rot90(mask)
        _paint(picture, column, layout.top - pad - column.shape[0], layout.left + offset)
    # Colour scale: share 1 at the top, 0 at the bottom, labelled at both ends and the middle.
    shares = np.linspace(1.0, 0.0, matrix)[:, None]
    bar = heat_levels(np.repeat(shares, layout.scale_width, axis=1)).astype(np.uint8)
    picture[layout.top : layout.top + matrix, layout.scale_left : layout.scale_left + layout.scale_width] = (
        bar
    )
    edge = picture[
        layout.top : layout.top + matrix, layout.scale_left : layout.scale_left + layout.scale_width
    ]
    edge[[0, -1], :] = _DARK_INK_INDEX
    edge[:, [0, -1]] = _DARK_INK_INDEX
    for text, at in (("100%", 0), ("50%", matrix // 2 - name_h // 2), ("0%", matrix - name_h)):
        _paint(
            picture, text_levels(text, size), layout.top + at, layout.scale_left + layout.scale_width + pad
        )
    picture.flags.writeable = False
    return picture


def cell_text(share: float) -> str:
    """What a cell with a nonzero count says: its share in whole percent, "<1" below half a percent."""
    return f"{share * 100:.0f}" if share >= 0.005 else "<1"


@functools.lru_cache(maxsize=4096)
def _value_block(text: str, size: int, step: int) -> np.ndarray:
    """A cell value's text box as palette indices over ramp step `step`: the same few hundred blocks
    recur every epoch, so each is built once."""
    block = _TEXT_INDICES[step][text_levels(text, size)]
    block.flags.writeable = False
    return block


def heatmap_indices(confusion: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(H, W) uint8 indices into HEATMAP_PALETTE of a (C, C) confusion matrix, rows normalised, with axis
    titles, class names (when there is room), cell values in percent (when they fit) and a colour scale."""
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
    steps = heat_levels(shares)
    cells = steps.astype(np.uint8)
    cells[rows[:, 0] == 0] = _ABSENT_INDEX
    cell = layout.cell
    side = num_classes * cell
    # Each cell's index repeated over its square, in one copy: a broadcast (C, cell, C, cell) view.
    matrix = picture[layout.top : layout.top + side, layout.left : layout.left + side]
    matrix.reshape(num_classes, cell, num_classes, cell)[...] = cells[:, None, :, None]
    if layout.value_size:
        down = max(0, (cell - line_height(layout.value_size)) // 2)
        gts, preds = np.nonzero(confusion)
        # Plain Python values for the loop: indexing numpy scalars cell by cell cost more than the drawing.
        for gt, pred, share, step in zip(
            gts.tolist(), preds.tolist(), shares[gts, preds].tolist(), steps[gts, preds].tolist(), strict=True
        ):
            block = _value_block(cell_text(share), layout.value_size, step)
            height, width = min(block.shape[0], cell), min(block.shape[1], cell)
            top, left = gt * cell + down, pred * cell + (cell - width) // 2
            matrix[top : top + height, left : left + width] = block[:height, :width]
    return picture


def confusion_heatmap(confusion: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of heatmap_indices: the picture as it is shown."""
    return HEATMAP_PALETTE[heatmap_indices(confusion, labels)]


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
