"""Measure, in a real screenshot, how tall a composite's legend text is on screen. Pure numpy.

The composite is found by its on-screen box; its legend is the block of rows at its bottom whose pixels are
mostly the legend's backdrop colour; glyphs are the connected runs of ink-dark pixels there. Swatches (their
borders, or the whole square for a dark class) are square, glyphs that reach the full glyph height (l, d, b,
k, h, t, digits) are narrow: only components at most 0.8 times as wide as tall count as glyphs.
"""

from __future__ import annotations

from collections import deque

import numpy as np

_NEAR = 40  # summed |RGB| distance within which a screenshot pixel counts as the backdrop colour


def crop(shot: np.ndarray, box: dict[str, float], natural: tuple[int, int]) -> np.ndarray:
    """The picture as shown: its <img> box, less the margins of `object-fit: contain` (Time Series fits
    pictures into a fixed box, centred)."""
    scale = min(box["width"] / natural[0], box["height"] / natural[1])
    width, height = natural[0] * scale, natural[1] * scale
    left = box["x"] + (box["width"] - width) / 2
    top = box["y"] + (box["height"] - height) / 2
    return shot[round(top) : round(top + height), round(left) : round(left + width)]


def legend_rows(picture: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """The bottom block of rows with a good share of backdrop pixels: the legend as shown."""
    near = np.abs(picture.astype(np.int32) - backdrop.astype(np.int32)).sum(axis=-1) < _NEAR
    mostly = near.mean(axis=1) >= 0.2  # legend rows: gaps between entries; grid rows: hardly any
    top = len(mostly)
    while top > 0 and mostly[top - 1]:
        top -= 1
    return picture[top:]


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each 8-connected component of `mask`."""
    seen = np.zeros(mask.shape, dtype=bool)
    boxes = []
    rows, cols = mask.shape
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        queue = deque([start])
        low_r, low_c, high_r, high_c = start[0], start[1], start[0], start[1]
        while queue:
            r, c = queue.popleft()
            low_r, high_r, low_c, high_c = min(low_r, r), max(high_r, r), min(low_c, c), max(high_c, c)
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    nr, nc = r + dr, c + dc
                    if 0 <= nr < rows and 0 <= nc < cols and mask[nr, nc] and not seen[nr, nc]:
                        seen[nr, nc] = True
                        queue.append((nr, nc))
        boxes.append((int(low_r), int(low_c), int(high_r - low_r + 1), int(high_c - low_c + 1)))
    return boxes


def glyph_heights(legend: np.ndarray, backdrop: np.ndarray, ink: np.ndarray) -> list[int]:
    """Heights in screen px of the narrow ink components (glyphs) of a legend as shown, tallest first."""
    weights = np.array([0.2126, 0.7152, 0.0722])
    luma = legend.astype(np.float64) @ weights
    threshold = (float(backdrop @ weights) + float(ink @ weights)) / 2
    boxes = _components(luma < threshold)
    heights = [h for _, _, h, w in boxes if h >= 3 and w <= 0.8 * h]
    return sorted(heights, reverse=True)


def tall_glyph_height(heights: list[int]) -> float:
    """The height that full-height glyphs reach: the 75th percentile of the glyph heights (short letters
    such as r or i make up the rest)."""
    return float(np.percentile(heights, 75)) if heights else 0.0
