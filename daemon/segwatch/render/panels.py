"""Panels that read two maps (or a map and the image) at once: overlay, error, boundary. Pure numpy.

Each takes the item's maps already resized to the panel's content box and turned into palette indices
(compose.py does both, for every panel alike), and returns that box's RGB pixels. These panels mix image
pixels and fixed colours, so they cannot live in palette-index space: the composer draws a composite with any
of them in RGB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from segwatch.render.indexspace import IndexSpace

__all__ = [
    "CORRECT_GREY",
    "MIXED_PANELS",
    "OUTLINE_DARK",
    "OUTLINE_LIGHT",
    "WRONG_RED",
    "boundary_colour",
    "boundary_mask",
    "mixed_panel",
    "outline_colours",
]

MIXED_PANELS: tuple[str, ...] = ("overlay", "error", "boundary")

WRONG_RED = np.array([255, 0, 0], dtype=np.uint8)
# Correct pixels of the error panel when there is no image to dim: a grey apart from pad (40) and gutter (96).
CORRECT_GREY = np.array([176, 176, 176], dtype=np.uint8)
OUTLINE_LIGHT = np.array([255, 255, 255], dtype=np.uint8)
OUTLINE_DARK = np.array([0, 0, 0], dtype=np.uint8)


def boundary_mask(indices: np.ndarray) -> np.ndarray:
    """True on each pixel whose right or lower neighbour holds another index: one-pixel class boundaries."""
    edge = np.zeros(indices.shape, dtype=bool)
    edge[:, :-1] |= indices[:, 1:] != indices[:, :-1]
    edge[:-1] |= indices[1:] != indices[:-1]
    return edge


def outline_colours(under: np.ndarray) -> np.ndarray:
    """(N, 3) line colours for (N, 3) pixels: white over dark pixels, black over light ones."""
    # Rec. 709 luma: cheap, and enough to tell dark from light.
    luma = under.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return np.where((luma < 110)[:, None], OUTLINE_LIGHT, OUTLINE_DARK)


def boundary_colour(space: IndexSpace) -> np.ndarray:
    """Colour of prediction boundaries in the boundary panel: white, else black, else a grey, whichever no
    class uses."""
    taken = {tuple(int(v) for v in colour) for colour in space.palette}
    for grey in (255, 0, *range(254, 0, -1)):
        if (grey, grey, grey) not in taken:
            return np.array([grey, grey, grey], dtype=np.uint8)
    return space.full_palette()[space.ignore_slot]  # unreachable with fewer than 256 classes


def mixed_panel(
    kind: str,
    gt: np.ndarray,
    pred: np.ndarray,
    image: np.ndarray | None,
    space: IndexSpace,
    *,
    overlay_alpha: float,
) -> np.ndarray:
    """The (h, w, 3) content of one of MIXED_PANELS from (h, w) gt and pred indices and an (h, w, 3) image."""
    if kind == "overlay":
        return _overlay(pred, image, space, overlay_alpha)
    if kind == "error":
        return _error(gt, pred, image, space)
    if kind == "boundary":
        content = space.full_palette()[gt]
        content[boundary_mask(pred)] = boundary_colour(space)
        return content
    raise ValueError(f"unknown panel {kind!r}, expected one of {MIXED_PANELS}")


def _overlay(pred: np.ndarray, image: np.ndarray | None, space: IndexSpace, alpha: float) -> np.ndarray:
    """Prediction colours blended over the image; class boundaries as a line that contrasts with what is under
    it (dark classes such as VOC's black background would otherwise draw black lines on dark pixels); no-class
    pixels unblended."""
    full = space.full_palette()
    base = image if image is not None else np.broadcast_to(full[space.pad_slot], (*pred.shape, 3))
    weight = np.float32(alpha)
    blended = (1 - weight) * base.astype(np.float32) + weight * full[pred].astype(np.float32)
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    edges = boundary_mask(pred)
    out[edges] = outline_colours(out[edges])
    unpredicted = pred == space.ignore_slot
    out[unpredicted] = base[unpredicted]
    return out


def _error(gt: np.ndarray, pred: np.ndarray, image: np.ndarray | None, space: IndexSpace) -> np.ndarray:
    """Correct: the image dimmed to half (or grey without one); wrong: red; ignored in gt: ignore colour."""
    correct = gt == pred
    out = np.empty((*gt.shape, 3), dtype=np.uint8)
    out[...] = WRONG_RED
    if image is not None:
        out[correct] = image[correct] // 2
    else:
        out[correct] = CORRECT_GREY
    out[gt == space.ignore_slot] = space.full_palette()[space.ignore_slot]
    return out
