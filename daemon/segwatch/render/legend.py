"""A class → colour legend drawn as a strip below a composite, in the composite's own palette-index space.

Each entry is a bordered square swatch in the class's colour followed by its name (or id); entries flow left
to right and wrap to the composite's width. The strip sits on the reserved backdrop colour, which keeps a
clear perceptual distance from every class colour, so even a class as dark as VOC's background or as grey as
Cityscapes' building stands out; the border and the text use the reserved ink levels. Only class and
reserved indices are used, so a paletted composite stays paletted.

Text is sized from the composite's width (lettering.text_size_for), so it reads at TensorBoard's card size.
Layout and strips are pure functions of their arguments and cached: the same legend is drawn every epoch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segwatch.render.epochplan import Legend
from segwatch.render.indexspace import Composite, IndexSpace
from segwatch.render.items import Item
from segwatch.render.lettering import line_height, paint_text, text_size_for, text_width

__all__ = [
    "LegendLayout",
    "legend_classes",
    "legend_height",
    "legend_layout",
    "legend_strip",
    "with_legend",
]

_LEGEND_SAMPLE_PIXELS = 512 * 512


def legend_classes(mode: Legend, items: Sequence[Item], num_classes: int) -> list[int]:
    """The class ids a legend lists: none, every class, or those in the gt or pred of the items shown."""
    if mode == "none":
        return []
    if mode == "all":
        return list(range(num_classes))
    seen = np.zeros(num_classes, dtype=bool)
    for item in items:
        for labels in (item.gt, item.pred):
            # A legend describes what the panels show, which are a few hundred pixels a side: a strided
            # sample of that density finds the same classes without reading a full-resolution batch.
            step = max(1, int(np.ceil(np.sqrt(labels.shape[0] * labels.shape[1] / _LEGEND_SAMPLE_PIXELS))))
            flat = np.asarray(labels[::step, ::step]).reshape(-1)
            if flat.dtype.kind == "b":
                flat = flat.view(np.uint8)
            # Ids were checked when composing: anything outside [0, num_classes) here is ignore_index.
            keep = (flat >= 0) & (flat < num_classes) if flat.dtype.kind == "i" else flat < num_classes
            seen |= np.bincount(flat[keep].astype(np.intp), minlength=num_classes)[:num_classes] > 0
    return [int(c) for c in np.flatnonzero(seen)]


def _name(class_id: int, names: Sequence[str]) -> str:
    return names[class_id] if class_id < len(names) else str(class_id)


@dataclass(frozen=True)
class LegendLayout:
    size: int  # font size, px
    swatch: int  # side of a swatch, border included
    border: int  # swatch border width
    gap: int  # between a swatch and its name
    line: int  # height of one line of entries
    pad: int  # around the strip's content
    height: int  # of the whole strip
    placed: tuple[tuple[int, int, int, str], ...]  # (line, left, class id, name) per entry


@functools.lru_cache(maxsize=256)
def _layout(classes: tuple[int, ...], names: tuple[str, ...], width: int, size: int) -> LegendLayout:
    swatch = round(size * 0.8)
    border = max(1, round(size / 14))
    # Tight spacing: at TensorBoard's card size every line of legend is a line less of picture.
    gap, entry_gap, pad = max(2, size // 4), max(4, size * 2 // 3), max(2, size // 4)
    line = line_height(size) + max(1, size // 10)
    placed: list[tuple[int, int, int, str]] = []
    row, left = 0, pad
    for class_id in classes:
        name = _name(class_id, names)
        entry = swatch + gap + text_width(name, size)
        if left > pad and left + entry > width - pad:
            row, left = row + 1, pad
        placed.append((row, left, class_id, name))
        left += entry + entry_gap
    lines = placed[-1][0] + 1 if placed else 0
    return LegendLayout(size, swatch, border, gap, line, pad, lines * line + 2 * pad, tuple(placed))


def legend_layout(
    classes: Sequence[int], names: Sequence[str], width: int, size: int | None = None
) -> LegendLayout:
    """Where each entry of a legend `width` px wide goes, at font `size` (default: what the width calls for,
    lettering.text_size_for)."""
    size = text_size_for(width) if size is None else size
    return _layout(tuple(int(c) for c in classes), tuple(names), int(width), int(size))


def legend_height(classes: Sequence[int], names: Sequence[str], width: int, size: int | None = None) -> int:
    """Height of the legend strip for `classes` at `width` (0 when there is nothing to list)."""
    return legend_layout(classes, names, width, size).height if classes else 0


@functools.lru_cache(maxsize=64)
def _strip(
    classes: tuple[int, ...], names: tuple[str, ...], space: IndexSpace, width: int, size: int, dtype: type
) -> np.ndarray:
    layout = _layout(classes, names, width, size)
    strip: np.ndarray = np.full((layout.height, width), space.backdrop_slot, dtype=dtype)
    text_h = line_height(layout.size)
    for row, left, class_id, name in layout.placed:
        line_top = layout.pad + row * layout.line
        top = line_top + (layout.line - layout.swatch) // 2
        inner = layout.swatch - 2 * layout.border
        strip[top : top + layout.swatch, left : left + layout.swatch] = space.ink_slot
        b = layout.border
        strip[top + b : top + b + inner, left + b : left + b + inner] = class_id
        text_top = line_top + (layout.line - text_h) // 2
        paint_text(strip, name, layout.size, text_top, left + layout.swatch + layout.gap, space.text_slots())
    strip.flags.writeable = False
    return strip


def legend_strip(
    classes: Sequence[int],
    names: Sequence[str],
    space: IndexSpace,
    width: int,
    dtype: type = np.uint8,
    *,
    size: int | None = None,
) -> np.ndarray:
    """(height, width) palette indices, read-only: one bordered swatch and name per class, wrapped to
    `width`, text at `size` (default: what the width calls for)."""
    size = text_size_for(width) if size is None else size
    return _strip(tuple(int(c) for c in classes), tuple(names), space, int(width), int(size), dtype)


def with_legend(
    composite: Composite,
    classes: Sequence[int],
    names: Sequence[str],
    space: IndexSpace,
    *,
    size: int | None = None,
) -> Composite:
    """The composite with a legend strip below it; unchanged when there is no class to list."""
    if not classes:
        return composite
    pixels = composite.pixels
    if composite.palette is not None:
        strip = legend_strip(classes, names, space, pixels.shape[1], dtype=pixels.dtype.type, size=size)
        return Composite(pixels=np.concatenate([pixels, strip]), palette=composite.palette)
    strip = legend_strip(classes, names, space, pixels.shape[1], dtype=np.uint32, size=size)
    return Composite(pixels=np.concatenate([pixels, space.full_palette()[strip]]), palette=None)
