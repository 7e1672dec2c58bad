"""Panels that read two maps (or a map and the image) at once — overlay, error, boundary — and the RGB grid
that holds them next to the plain image, gt and pred panels. Pure numpy.

These panels mix image pixels and fixed colours, so they cannot live in palette-index space: a composite with
any of them is RGB. Without them the index-space composer in compose.py is used instead.

Geometry (panel size, letterbox, gutters, grid order) is the same as compose.py's, so switching a panel on
moves nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import Stored
from segwatch.render.compose import (
    Composite,
    IndexSpace,
    content_box,
    grid_layout,
    resize_image_bilinear,
    resize_labels_nearest,
)
from segwatch.render.items import Item

__all__ = [
    "ALL_PANELS",
    "CORRECT_GREY",
    "RGB_PANELS",
    "WRONG_RED",
    "PanelOptions",
    "boundary_colour",
    "boundary_mask",
    "compose_rgb_grid",
    "outline_colours",
]

RGB_PANELS: tuple[str, ...] = ("overlay", "error", "boundary")
ALL_PANELS: tuple[str, ...] = ("image", "gt", "pred", *RGB_PANELS)

WRONG_RED = np.array([255, 0, 0], dtype=np.uint8)
# Correct pixels of the error panel when there is no image to dim: a grey apart from pad (40) and gutter (96).
CORRECT_GREY = np.array([176, 176, 176], dtype=np.uint8)


@dataclass(frozen=True)
class PanelOptions:
    panel_size: tuple[int, int]  # (height, width) of each panel
    resize: Literal["letterbox", "stretch"]
    panels: tuple[str, ...]  # subset and order of ALL_PANELS
    columns: int  # grid: items per row
    overlay_alpha: float = 0.4  # weight of the prediction colour over the image
    gutter: int = 2  # px between panels and between items

    def __post_init__(self) -> None:
        height, width = self.panel_size
        if height < 1 or width < 1:
            raise ValueError(f"panel_size must be two positive ints (height, width), got {self.panel_size}")
        unknown = [p for p in self.panels if p not in ALL_PANELS]
        if not self.panels or unknown or len(set(self.panels)) != len(self.panels):
            raise ValueError(f"panels must be distinct names from {ALL_PANELS}, got {self.panels}")
        if not 0 < self.overlay_alpha < 1:
            raise ValueError(f"overlay_alpha must be in (0, 1), got {self.overlay_alpha}")
        if self.columns < 1 or self.gutter < 0:
            raise ValueError(f"columns must be >= 1 and gutter >= 0, got {self.columns} and {self.gutter}")


def boundary_mask(indices: np.ndarray) -> np.ndarray:
    """True on each pixel whose right or lower neighbour holds another index: one-pixel class boundaries."""
    edge = np.zeros(indices.shape, dtype=bool)
    edge[:, :-1] |= indices[:, 1:] != indices[:, :-1]
    edge[:-1] |= indices[1:] != indices[:-1]
    return edge


OUTLINE_LIGHT = np.array([255, 255, 255], dtype=np.uint8)
OUTLINE_DARK = np.array([0, 0, 0], dtype=np.uint8)


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


def _indices(labels: Stored, space: IndexSpace, size: tuple[int, int], source: str) -> np.ndarray:
    """Class ids resized to `size` → full-palette indices (ignore_index → its slot); refuses unknown ids."""
    values = resize_labels_nearest(labels, size).astype(np.int64)
    n = space.num_classes
    outside = (values < 0) | (values >= n)
    if not outside.any():
        return values
    ignored = values == space.ignore_index if space.ignore_index is not None else np.zeros_like(outside)
    stray = outside & ~ignored
    if stray.any():
        raise ArtifactError(
            f"{source}: class id {int(values[stray][0])} outside [0, {n}) and not ignore_index "
            f"{space.ignore_index}"
        )
    values[ignored] = space.ignore_slot
    return values


class _Drawer:
    """One item's resized maps and image, computed once and shared by all of its panels."""

    def __init__(self, item: Item, space: IndexSpace, opts: PanelOptions, source: str) -> None:
        self.space = space
        self.opts = opts
        self.full = space.full_palette()
        self.box = content_box(item.gt.shape[:2], opts.panel_size, opts.resize)
        height, width = self.box[2:]
        self.gt = _indices(item.gt, space, (height, width), item.files.get("gt", source))
        self.pred = _indices(item.pred, space, (height, width), item.files.get("pred", source))
        self.image = None if item.image is None else resize_image_bilinear(item.image, (height, width))

    def panel(self, kind: str) -> np.ndarray:
        top, left, height, width = self.box
        out = np.empty((*self.opts.panel_size, 3), dtype=np.uint8)
        out[...] = self.full[self.space.pad_slot]
        out[top : top + height, left : left + width] = self._content(kind)
        return out

    def _content(self, kind: str) -> np.ndarray:
        if kind == "image":
            return self.image if self.image is not None else self.full[self.space.pad_slot]
        if kind == "gt":
            return self.full[self.gt]
        if kind == "pred":
            return self.full[self.pred]
        if kind == "overlay":
            return self._overlay()
        if kind == "error":
            return self._error()
        if kind == "boundary":
            content = self.full[self.gt]
            content[boundary_mask(self.pred)] = boundary_colour(self.space)
            return content
        raise ValueError(f"unknown panel {kind!r}, expected one of {ALL_PANELS}")

    def _overlay(self) -> np.ndarray:
        """Prediction colours blended over the image; class boundaries as a line that contrasts with what is
        under it (dark classes such as VOC's black background would otherwise draw black lines on dark
        pixels); no-class pixels unblended."""
        base = (
            self.image
            if self.image is not None
            else np.broadcast_to(self.full[self.space.pad_slot], (*self.pred.shape, 3))
        )
        alpha = np.float32(self.opts.overlay_alpha)
        blended = (1 - alpha) * base.astype(np.float32) + alpha * self.full[self.pred].astype(np.float32)
        out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        edges = boundary_mask(self.pred)
        out[edges] = outline_colours(out[edges])
        unpredicted = self.pred == self.space.ignore_slot
        out[unpredicted] = base[unpredicted]
        return out

    def _error(self) -> np.ndarray:
        """Correct: the image dimmed to half (or grey without one); wrong: red; ignored in gt: ignore colour."""
        correct = self.gt == self.pred
        out = np.empty((*self.gt.shape, 3), dtype=np.uint8)
        out[...] = WRONG_RED
        if self.image is not None:
            out[correct] = self.image[correct] // 2
        else:
            out[correct] = CORRECT_GREY
        out[self.gt == self.space.ignore_slot] = self.full[self.space.ignore_slot]
        return out


def compose_rgb_grid(
    items: Sequence[Item], space: IndexSpace, opts: PanelOptions, *, source: str = ""
) -> Composite:
    """All items in one RGB picture, item i's panels at grid row i // columns, column i % columns."""
    if not items:
        raise ValueError("compose_rgb_grid needs at least one item, got none")
    for item in items:
        if item.gt.ndim != 2 or item.gt.shape != item.pred.shape or 0 in item.gt.shape:
            raise ArtifactError(
                f"{source}: gt and pred must be equal, non-empty (H, W) maps, got {item.gt.shape} and "
                f"{item.pred.shape}"
            )
    full = space.full_palette()
    panel_h, panel_w = opts.panel_size
    (height, width), corners = grid_layout(len(items), opts)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[...] = full[space.gutter_slot]
    for item, item_corners in zip(items, corners, strict=True):
        drawer = _Drawer(item, space, opts, source)
        for kind, (top, left) in zip(opts.panels, item_corners, strict=True):
            canvas[top : top + panel_h, left : left + panel_w] = drawer.panel(kind)
    return Composite(pixels=canvas, palette=None)
