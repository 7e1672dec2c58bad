"""Text as coverage masks in a few levels, drawn with Pillow's bundled scalable font (nothing is downloaded).

Text is anti-aliased but quantised to TEXT_LEVELS ink levels, so it can still be painted in palette-index
space with a handful of reserved indices and a label composite stays 8-bit paletted. The font scales: what a
picture needs is text that is legible at the size TensorBoard shows the picture, not at its full size, so
`text_size_for` picks the font size from the picture's size.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

__all__ = [
    "CARD_WIDTH",
    "SCREEN_TEXT_PX",
    "TEXT_LEVELS",
    "TIME_SERIES_HEIGHT",
    "line_height",
    "paint_text",
    "shown_scale",
    "text_coverage",
    "text_levels",
    "text_size_for",
    "text_width",
]

# TensorBoard shows every image scaled into its card, measured in a 1600x1200 window at the default card
# size: the Images tab scales it to 350 CSS px wide; the Time Series tab (the landing page) fits it into a box
# 215 px tall (and up to ~454 px wide). A picture's text must be sized for the smaller of the two.
CARD_WIDTH = 350
TIME_SERIES_HEIGHT = 215
# Font size, in on-screen px, that text should have once the picture is scaled into its card: capitals,
# ascenders and digits are then ~10.5 px tall, above the 9 px below which a legend stops being readable.
SCREEN_TEXT_PX = 15
# Coverage levels besides "no ink": 1 (faint) .. TEXT_LEVELS (full ink).
TEXT_LEVELS = 3
_SMALLEST = 11


def shown_scale(width: int, height: int) -> float:
    """How much TensorBoard shrinks a `width` x `height` picture in the smaller of its two cards (at most 1:
    smaller pictures are scaled up)."""
    return min(1.0, CARD_WIDTH / max(1, width), TIME_SERIES_HEIGHT / max(1, height))


def text_size_for(picture_width: int, picture_height: int = 0, *, screen_px: int = SCREEN_TEXT_PX) -> int:
    """Font size (px in the picture) whose text is `screen_px` tall once a `picture_width` x
    `picture_height` picture is shown in TensorBoard's cards (see shown_scale)."""
    return max(_SMALLEST, math.ceil(screen_px / shown_scale(picture_width, picture_height) - 1e-9))


@functools.cache
def _font(size: int) -> Any:
    # Imported here: only the processes that draw text pay for Pillow.
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def line_height(size: int) -> int:
    """Height of a line of text at `size`: the font's ascent plus descent."""
    ascent, descent = _font(size).getmetrics()
    return int(ascent + descent)


def text_width(text: str, size: int) -> int:
    return math.ceil(_font(size).getlength(text))


@functools.lru_cache(maxsize=4096)
def _coverage(text: str, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    width = text_width(text, size)
    height = line_height(size)
    if width == 0:
        return np.zeros((height, 0), dtype=np.uint8)
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).text((0, 0), text, fill=255, font=_font(size))
    coverage = np.array(canvas, dtype=np.uint8)
    coverage.flags.writeable = False
    return coverage


def text_coverage(text: str, size: int) -> np.ndarray:
    """(line_height(size), width) uint8 anti-aliased ink coverage, 0..255, for RGB pictures. Cached and
    read-only."""
    return _coverage(text, size)


@functools.lru_cache(maxsize=4096)
def _levels(text: str, size: int) -> np.ndarray:
    coverage = _coverage(text, size).astype(np.uint16)
    levels = ((coverage * TEXT_LEVELS + 127) // 255).astype(np.uint8)
    levels.flags.writeable = False
    return levels


def text_levels(text: str, size: int) -> np.ndarray:
    """(line_height(size), width) uint8 ink levels in 0..TEXT_LEVELS (0: no ink). Cached and read-only:
    the same names are drawn every epoch."""
    return _levels(text, size)


def paint_text(target: np.ndarray, text: str, size: int, top: int, left: int, slots: np.ndarray) -> None:
    """Draw `text` into an index strip with its top-left corner at (top, left), cut at the strip's edges; only
    inked pixels change, each to `slots[level]` (the palette index reserved for that ink level)."""
    levels = text_levels(text, size)
    height = min(levels.shape[0], target.shape[0] - top)
    width = min(levels.shape[1], target.shape[1] - left)
    if height <= 0 or width <= 0:
        return
    levels = levels[:height, :width]
    region = target[top : top + height, left : left + width]
    inked = levels > 0
    region[inked] = slots[levels[inked]]
