"""How many items per row, and how large each panel: a grid shaped to fit a TensorBoard card. Pure.

TensorBoard scales every picture to its card's width, so a wide strip of items ends up a sliver. With
`columns: auto` the grid takes the number of items per row that brings the whole picture (headers and legend
included) closest to ASPECT, and shrinks panels whenever the picture would be wider than `max_width`:
panels get smaller before the grid turns into a strip.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ASPECT", "MIN_PANEL", "GridShape", "fit_grid", "grid_size"]

ASPECT = 4 / 3  # width / height the auto layout aims at: the shape of a TensorBoard card's picture
MIN_PANEL = 32  # px: panels are never shrunk narrower than this (the layout takes fewer columns instead)


@dataclass(frozen=True)
class GridShape:
    columns: int  # items per row
    panel_size: tuple[int, int]  # (height, width) of each panel, after any shrinking


def grid_size(count: int, panels: int, shape: GridShape, gutter: int) -> tuple[int, int]:
    """(height, width) of the panels' grid alone, without header or legend."""
    panel_h, panel_w = shape.panel_size
    columns = min(shape.columns, count)
    rows = -(-count // columns)
    return rows * (panel_h + gutter) - gutter, columns * panels * (panel_w + gutter) - gutter


def _shrunk(
    panel_size: tuple[int, int], columns: int, panels: int, gutter: int, max_width: int
) -> tuple[int, int]:
    """The panel size, scaled down (aspect kept) just enough that `columns` items fit in `max_width`."""
    height, width = panel_size
    fitting = (max_width + gutter) // (columns * panels) - gutter
    if fitting >= width:
        return panel_size
    fitting = max(1, fitting)
    return max(1, round(height * fitting / width)), fitting


def fit_grid(
    count: int,
    *,
    panels: int,
    panel_size: tuple[int, int],
    gutter: int,
    max_width: int,
    columns: int | None = None,
    extra_height: Callable[[GridShape, int], int] = lambda shape, width: 0,
) -> GridShape:
    """The grid for `count` items of `panels` panels each.

    `columns` None means auto: the items per row whose picture (grid plus `extra_height(shape, width)` for
    header and legend) is closest to ASPECT, fewer empty cells and then larger panels breaking ties. An explicit
    `columns` is kept. Either way panels shrink (keeping their aspect) so the picture is at most `max_width`
    wide, unless that would make them narrower than MIN_PANEL (or their natural width, if smaller).
    """
    if count < 1 or panels < 1:
        raise ValueError(f"a grid needs at least one item and one panel, got {count} and {panels}")
    floor = min(MIN_PANEL, panel_size[1])
    if columns is not None:
        fixed = min(columns, count)
        size = _shrunk(panel_size, fixed, panels, gutter, max_width)
        if size[1] < floor:
            size = (max(1, round(panel_size[0] * floor / panel_size[1])), floor)
        return GridShape(fixed, size)
    best: tuple[tuple[float, int, int], GridShape] | None = None
    for candidate in range(1, count + 1):
        size = _shrunk(panel_size, candidate, panels, gutter, max_width)
        if size[1] < floor and candidate > 1:
            break  # more columns only shrink panels further
        shape = GridShape(candidate, size)
        height, width = grid_size(count, panels, shape, gutter)
        height += extra_height(shape, width)
        empty = -(-count // candidate) * candidate - count
        # A half-empty last row looks like a missing item: it costs as much as a 25 % worse aspect.
        off = abs(math.log(width / height / ASPECT)) + 0.25 * empty / candidate
        score = (round(off, 3), empty, -size[1])
        if best is None or score < best[0]:
            best = (score, shape)
    assert best is not None
    return best[1]
