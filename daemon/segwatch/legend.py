"""A class → colour legend drawn as a strip below a composite, in the composite's own palette-index space.

Each entry is a square swatch in the class's colour followed by its name (or id); entries flow left to right
and wrap to the composite's width. The strip uses only the class colours and two reserved ones (pad as the
background, ignore's colour for the text), so a paletted composite stays paletted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from segwatch.compose import Composite, IndexSpace
from segwatch.lettering import TEXT_HEIGHT, text_mask, text_width
from segwatch.normalise import Item

__all__ = ["LINE_HEIGHT", "SWATCH", "legend_classes", "legend_strip", "with_legend"]

LINE_HEIGHT = TEXT_HEIGHT + 4
SWATCH = TEXT_HEIGHT - 2  # side of a colour square
_SWATCH_GAP = 3  # between a swatch and its name
_ENTRY_GAP = 10  # between one entry and the next
_PAD = 2  # around the strip's content


_LEGEND_SAMPLE_PIXELS = 512 * 512


def legend_classes(
    mode: Literal["none", "present", "all"], items: Sequence[Item], num_classes: int
) -> list[int]:
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


def _entries(classes: Sequence[int], names: Sequence[str]) -> list[tuple[int, str]]:
    return [(c, names[c] if c < len(names) else str(c)) for c in classes]


def legend_strip(
    classes: Sequence[int], names: Sequence[str], space: IndexSpace, width: int, dtype: type = np.uint8
) -> np.ndarray:
    """(height, width) palette indices: one swatch and name per class in `classes`, wrapped to `width`."""
    placed: list[tuple[int, int, int, str]] = []  # (line, left, class id, name)
    line, left = 0, _PAD
    for class_id, name in _entries(classes, names):
        entry = SWATCH + _SWATCH_GAP + text_width(name)
        if left > _PAD and left + entry > width - _PAD:
            line, left = line + 1, _PAD
        placed.append((line, left, class_id, name))
        left += entry + _ENTRY_GAP
    lines = (placed[-1][0] + 1) if placed else 0
    strip: np.ndarray = np.full((lines * LINE_HEIGHT + 2 * _PAD, width), space.pad_slot, dtype=dtype)
    for line, left, class_id, name in placed:
        top = _PAD + line * LINE_HEIGHT + (LINE_HEIGHT - SWATCH) // 2
        strip[top : top + SWATCH, left : left + SWATCH] = class_id
        mask = text_mask(name)
        text_left = left + SWATCH + _SWATCH_GAP
        text_top = _PAD + line * LINE_HEIGHT + (LINE_HEIGHT - TEXT_HEIGHT) // 2
        visible = mask[:, : max(0, width - text_left)]  # a name wider than the whole strip is cut
        target = strip[text_top : text_top + TEXT_HEIGHT, text_left : text_left + visible.shape[1]]
        target[visible] = space.ignore_slot
    return strip


def with_legend(
    composite: Composite, classes: Sequence[int], names: Sequence[str], space: IndexSpace
) -> Composite:
    """The composite with a legend strip below it; unchanged when there is no class to list."""
    if not classes:
        return composite
    pixels = composite.pixels
    if composite.palette is not None:
        strip = legend_strip(classes, names, space, pixels.shape[1], dtype=pixels.dtype.type)
        return Composite(pixels=np.concatenate([pixels, strip]), palette=composite.palette)
    strip = legend_strip(classes, names, space, pixels.shape[1], dtype=np.uint32)
    return Composite(pixels=np.concatenate([pixels, space.full_palette()[strip]]), palette=None)
