"""Text as boolean pixel masks, drawn with Pillow's built-in bitmap font (nothing is downloaded).

A bitmap font draws each pixel fully on or off, so text can be painted in palette-index space with a single
index, and the result is the same on every machine.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["TEXT_HEIGHT", "text_mask", "text_width"]

# Height of every mask: the font's cell, descenders included.
TEXT_HEIGHT = 11


@functools.cache
def _font() -> Any:
    # Imported here: only the processes that draw text pay for Pillow.
    from PIL import ImageFont

    return ImageFont.load_default_imagefont()


def _drawable(text: str) -> str:
    # The bitmap font covers Latin-1; anything else is drawn as '?' rather than failing the epoch.
    return text.encode("latin-1", "replace").decode("latin-1")


def text_width(text: str) -> int:
    return int(_font().getlength(_drawable(text)))


def text_mask(text: str) -> np.ndarray:
    """(TEXT_HEIGHT, width) bool: True where the text's pixels are; (TEXT_HEIGHT, 0) for empty text."""
    from PIL import Image, ImageDraw

    width = text_width(text)
    if width == 0:
        return np.zeros((TEXT_HEIGHT, 0), dtype=bool)
    canvas = Image.new("1", (width, TEXT_HEIGHT), 0)
    ImageDraw.Draw(canvas).text((0, 0), _drawable(text), fill=1, font=_font())
    return np.array(canvas, dtype=bool)
