"""Column headers above a grid: which panel is the image, the ground truth, the prediction... Pure.

One line of text centred over each panel of every item column, on the reserved backdrop colour, drawn in
palette-index space like the legend. The text is sized for TensorBoard's card (lettering.text_size_for) and
made smaller, or the names shorter, when a panel is too narrow for it. Cached: a configuration draws the same
header every epoch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from segwatch.render.indexspace import Composite, IndexSpace
from segwatch.render.lettering import line_height, paint_text, text_size_for, text_width

__all__ = ["HEADER_NAMES", "SHORT_HEADER_NAMES", "header_height", "header_strip", "with_headers"]

HEADER_NAMES = {
    "image": "image",
    "gt": "ground truth",
    "pred": "prediction",
    "overlay": "overlay",
    "error": "errors",
    "boundary": "boundary",
}
# For panels too narrow for the full names at a legible size.
SHORT_HEADER_NAMES = {
    "image": "image",
    "gt": "truth",
    "pred": "pred",
    "overlay": "overlay",
    "error": "errors",
    "boundary": "edges",
}
_SMALLEST = 9


def _pad(size: int) -> int:
    return max(2, size // 4)


def _fitting_size(names: Sequence[str], target: int, room: int) -> int:
    """The largest font size up to `target` at which every name fits in `room` px."""
    size = target
    while size > _SMALLEST and max(text_width(name, size) for name in names) > room:
        size -= max(1, size // 10)
    return max(size, _SMALLEST)


@functools.lru_cache(maxsize=64)
def _choice(panels: tuple[str, ...], panel_width: int, target: int) -> tuple[int, tuple[str, ...]]:
    room = panel_width - 4
    full = tuple(HEADER_NAMES[p] for p in panels)
    size = _fitting_size(full, target, room)
    if size < target * 3 // 4:
        short = tuple(SHORT_HEADER_NAMES[p] for p in panels)
        short_size = _fitting_size(short, target, room)
        if short_size > size:
            return short_size, short
    return size, full


def header_height(panels: Sequence[str], panel_width: int, width: int, size: int | None = None) -> int:
    """Height of the header line; text at most `size` (default: what the width calls for)."""
    target = text_size_for(width) if size is None else size
    chosen, _ = _choice(tuple(panels), int(panel_width), int(target))
    return line_height(chosen) + 2 * _pad(chosen)


@functools.lru_cache(maxsize=64)
def _strip(
    panels: tuple[str, ...],
    corners: tuple[int, ...],
    panel_width: int,
    width: int,
    target: int,
    space: IndexSpace,
    dtype: type,
) -> np.ndarray:
    size, names = _choice(panels, panel_width, target)
    strip: np.ndarray = np.full((line_height(size) + 2 * _pad(size), width), space.backdrop_slot, dtype=dtype)
    for index, left in enumerate(corners):
        name = names[index % len(panels)]
        centred = left + max(0, (panel_width - text_width(name, size)) // 2)
        paint_text(strip, name, size, _pad(size), centred, space.text_slots())
    strip.flags.writeable = False
    return strip


def header_strip(
    panels: Sequence[str],
    lefts: Sequence[int],
    panel_width: int,
    width: int,
    space: IndexSpace,
    dtype: type = np.uint8,
    *,
    size: int | None = None,
) -> np.ndarray:
    """(height, width) palette indices, read-only: each panel's name centred over the panel whose left edge
    is at the matching entry of `lefts` (panels repeat for each item column); text at most `size`."""
    target = text_size_for(width) if size is None else size
    key = (tuple(panels), tuple(int(x) for x in lefts), int(panel_width), int(width), int(target))
    return _strip(*key, space, dtype)


def with_headers(
    composite: Composite,
    panels: Sequence[str],
    lefts: Sequence[int],
    panel_width: int,
    space: IndexSpace,
    *,
    size: int | None = None,
) -> Composite:
    """The composite with its column headers above it."""
    pixels = composite.pixels
    width = pixels.shape[1]
    if composite.palette is not None:
        strip = header_strip(panels, lefts, panel_width, width, space, dtype=pixels.dtype.type, size=size)
        return Composite(pixels=np.concatenate([strip, pixels]), palette=composite.palette)
    strip = header_strip(panels, lefts, panel_width, width, space, dtype=np.uint32, size=size)
    return Composite(pixels=np.concatenate([space.full_palette()[strip], pixels]), palette=None)
