"""Items → one composite picture: each item's panels side by side, items in a grid. Pure numpy.

The one composer for every panel set. Label panels are drawn in palette-index space (indexspace.py), so a
composite of image, gt and pred panels without an image to show is an 8-bit paletted picture, which is smaller
and much faster to encode than RGB. Whenever that is impossible (an image to show, a panel that mixes maps
and image (panels.py), or more classes than a byte of indices holds) the same indices are looked up in the
palette and the composite is RGB.

Labels are only ever resized by nearest-neighbour index sampling: interpolation would invent class ids,
and sampling reads just the sampled rows of a map still on disk.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import Stored, sample_rows
from segwatch.metrics.confusion import RowSample
from segwatch.render.epochplan import Resize
from segwatch.render.indexspace import Composite, IndexSpace, index_dtype, write_indices
from segwatch.render.items import Item
from segwatch.render.panels import MIXED_PANELS, mixed_panel

__all__ = [
    "IMAGE_PANELS",
    "PANELS",
    "RESIZE_MODES",
    "ComposeOptions",
    "Panel",
    "check_item",
    "check_panels",
    "compose_grid",
    "compose_pair",
    "content_box",
    "grid_layout",
    "is_rgb",
    "nearest_taps",
    "resize_image_bilinear",
    "resize_labels_nearest",
]

# The panel names and resize modes the config accepts are these: the composer owns its vocabulary.
Panel = Literal["image", "gt", "pred", "overlay", "error", "boundary"]
PANELS: tuple[str, ...] = get_args(Panel)
assert PANELS[3:] == MIXED_PANELS  # spelled twice only because a type checker needs the Literal
# The panels that show the image: with one of them, an image file is part of every epoch.
IMAGE_PANELS: tuple[str, ...] = ("image", "overlay")
RESIZE_MODES: tuple[str, ...] = get_args(Resize)


def check_panels(panels: object) -> tuple[str, ...]:
    """The panels of one item as the composer draws them: a non-empty sequence of distinct names from PANELS.

    The config validates `compose.panels` with this, once; ComposeOptions built from the plan trusts it.
    """
    if (
        not isinstance(panels, list | tuple)
        or not panels
        or not all(isinstance(panel, str) and panel in PANELS for panel in panels)
        or len(set(panels)) != len(panels)
    ):
        raise ValueError(f"expected a non-empty list of distinct panels from {', '.join(PANELS)}")
    return tuple(panels)


@dataclass(frozen=True)
class ComposeOptions:
    panel_size: tuple[int, int]  # (height, width) of each panel
    resize: Resize
    panels: tuple[str, ...]  # subset and order of PANELS
    columns: int  # grid: items per row
    gutter: int = 2  # px between panels and between items
    overlay_alpha: float = 0.4  # weight of the prediction colour over the image in the overlay panel

    def __post_init__(self) -> None:
        height, width = self.panel_size
        if height < 1 or width < 1:
            raise ValueError(f"panel_size must be two positive ints (height, width), got {self.panel_size}")
        # panels, resize and overlay_alpha come from the config, which checked them (check_panels, RESIZE_MODES,
        # a unit interval); the size, columns and gutter are the layout's, worked out per epoch.
        if self.columns < 1:
            raise ValueError(f"columns must be at least 1, got {self.columns}")
        if self.gutter < 0:
            raise ValueError(f"gutter must be >= 0, got {self.gutter}")


def content_box(
    source_hw: tuple[int, int], panel_hw: tuple[int, int], resize: Resize
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the resized content inside a panel.

    letterbox keeps the aspect ratio and centres the content; stretch fills the panel.
    """
    height, width = source_hw
    panel_h, panel_w = panel_hw
    if resize == "stretch":
        return 0, 0, panel_h, panel_w
    # Integer arithmetic (round half up) so the geometry never depends on float rounding.
    if height * panel_w >= width * panel_h:
        out_h = panel_h
        out_w = min(panel_w, max(1, (2 * width * panel_h + height) // (2 * height)))
    else:
        out_w = panel_w
        out_h = min(panel_h, max(1, (2 * height * panel_w + width) // (2 * width)))
    return (panel_h - out_h) // 2, (panel_w - out_w) // 2, out_h, out_w


@functools.lru_cache(maxsize=256)
def nearest_taps(size_in: int, size_out: int) -> np.ndarray | slice:
    """Source index under the centre of each output pixel: floor((i + 0.5) * size_in / size_out).

    When size_out divides size_in those are every k-th index from k // 2, returned as that slice. Cached and
    read-only: every item of a batch has the same shape and asks for the same taps.
    """
    if size_in % size_out == 0:
        step = size_in // size_out
        return slice(step // 2, step // 2 + step * (size_out - 1) + 1, step)
    taps = ((2 * np.arange(size_out, dtype=np.int64) + 1) * size_in) // (2 * size_out)
    taps.flags.writeable = False
    return taps


def _sample_nearest(labels: Stored, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour samples of an (H, W) map: a strided view for whole-number factors, else a copy.

    Either way only the sampled rows are read (from a file, by offset).
    """
    rows = nearest_taps(labels.shape[0], size[0])
    cols = nearest_taps(labels.shape[1], size[1])
    picked = sample_rows(labels, rows)
    # take() keeps rows contiguous; `[:, cols]` would hand back a column-major array, slow to copy into a panel.
    return picked[:, cols] if isinstance(cols, slice) else picked.take(cols, axis=1)


def resize_labels_nearest(labels: Stored, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) label map to `size`; reads only the sampled rows."""
    return np.array(_sample_nearest(labels, size))


def _linear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel: the two source indices around its centre and the weight of the second."""
    centres = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    centres = np.clip(centres, 0.0, size_in - 1)
    low = np.floor(centres).astype(np.intp)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (centres - low).astype(np.float32)


def resize_image_bilinear(image: Stored, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (H, W, C) image to `size` (half-pixel centres, edges clamped), as uint8."""
    row_lo, row_hi, row_w = _linear_taps(image.shape[0], size[0])
    col_lo, col_hi, col_w = _linear_taps(image.shape[1], size[1])
    # Gather only the source rows and columns the taps touch before any arithmetic: when shrinking a large
    # image (possibly still on disk) that is a small fraction of it.
    rows, row_lo, row_hi = _compact(row_lo, row_hi)
    cols, col_lo, col_hi = _compact(col_lo, col_hi)
    taps = np.asarray(image[rows])[:, cols].astype(np.float32)
    row_w = row_w[:, None, None]
    vertical = taps[row_lo] * (1 - row_w) + taps[row_hi] * row_w
    col_w = col_w[None, :, None]
    both = vertical[:, col_lo] * (1 - col_w) + vertical[:, col_hi] * col_w
    return np.clip(np.rint(both), 0, 255).astype(np.uint8)


def _compact(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct source indices used, and `low`/`high` re-expressed as positions among them."""
    used = np.union1d(low, high)
    return used, np.searchsorted(used, low), np.searchsorted(used, high)


def check_item(item: Item, source: str) -> None:
    """Refuse an item no panel can draw: label maps that are not equal, non-empty, integer (H, W) maps, or an
    image that is not (H, W, 3) uint8. Raises ArtifactError prefixed with `source`."""
    for role, labels in (("gt", item.gt), ("pred", item.pred)):
        if labels.ndim != 2 or 0 in labels.shape:
            raise ArtifactError(
                f"{source}: {role} must be a non-empty (H, W) label map, got shape {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ArtifactError(f"{source}: {role} must have an integer dtype, got {labels.dtype}")
    if item.gt.shape != item.pred.shape:
        raise ArtifactError(f"{source}: gt shape {item.gt.shape} and pred shape {item.pred.shape} differ")
    image = item.image
    if image is not None and (image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape):
        raise ArtifactError(f"{source}: image must have shape (H, W, 3), got {image.shape}")
    if image is not None and image.dtype != np.uint8:
        raise ArtifactError(f"{source}: image must be uint8, got {image.dtype}")


def is_rgb(items: Sequence[Item], space: IndexSpace, opts: ComposeOptions) -> bool:
    """Whether the composite of `items` is RGB: an image shown, a mixed panel, or indices past a byte."""
    shows_image = "image" in opts.panels and any(item.image is not None for item in items)
    mixed = any(kind in MIXED_PANELS for kind in opts.panels)
    return shows_image or mixed or not space.fits_8bit


def panel_sample(
    item: Item, panel_size: tuple[int, int], resize: Resize, num_classes: int, ignore_index: int | None
) -> RowSample | None:
    """Where the metrics' count pass can copy the pixels this item's gt and pred panels show at `panel_size`
    (the rows and columns _sample_nearest reads), so composing reads no map again. In a byte when every id
    the count accepts fits one (the count refuses any other id, so the cast is exact), else in the maps' own
    dtype. None for an item whose maps are not plain (H, W) integer maps of one shape."""
    gt, pred = item.gt, item.pred
    if item.volume is not None or gt.ndim != 2 or gt.shape != pred.shape or 0 in gt.shape:
        return None
    if not (np.issubdtype(gt.dtype, np.integer) and np.issubdtype(pred.dtype, np.integer)):
        return None
    _, _, height, width = content_box(gt.shape, panel_size, resize)
    rows = nearest_taps(gt.shape[0], height)
    byte = num_classes <= 256 and (ignore_index is None or 0 <= ignore_index < 256)
    return RowSample(
        rows=np.arange(*rows.indices(gt.shape[0])) if isinstance(rows, slice) else rows,
        cols=nearest_taps(gt.shape[1], width),
        gt=np.empty((height, width), dtype=np.uint8 if byte else gt.dtype),
        pred=np.empty((height, width), dtype=np.uint8 if byte else pred.dtype),
    )


class _Cell:
    """One item's panels: its maps resized to the content box and turned into indices once, shared by every
    panel that shows them. A filled panel_sample of the same box stands in for reading the maps."""

    def __init__(
        self,
        item: Item,
        space: IndexSpace,
        opts: ComposeOptions,
        source: str,
        sample: RowSample | None = None,
    ) -> None:
        self.item, self.space, self.opts, self.source = item, space, opts, source
        self.box = content_box(item.gt.shape[:2], opts.panel_size, opts.resize)
        self.sample = sample if sample is not None and sample.gt.shape == self.box[2:] else None
        self._indices: dict[str, np.ndarray] = {}
        self._images: dict[tuple[int, int], np.ndarray] = {}

    def draw_indices(self, kind: str, target: np.ndarray) -> None:
        """A paletted panel (image, gt or pred) into a panel-sized index array."""
        top, left, height, width = self.box
        if kind == "image" or (height, width) != self.opts.panel_size:
            target[...] = self.space.pad_slot
        if kind != "image":  # a paletted composite shows no image: its image panels are pad
            self._write(kind, target[top : top + height, left : left + width])

    def draw_rgb(self, kind: str, target: np.ndarray) -> None:
        """Any panel into a panel-sized RGB array."""
        full = self.space.full_palette()
        image = self.item.image
        top, left, height, width = self.box
        if kind == "image" and image is not None:
            top, left, height, width = content_box(image.shape[:2], self.opts.panel_size, self.opts.resize)
        if kind == "image" or (height, width) != self.opts.panel_size:
            target[...] = full[self.space.pad_slot]
        content = target[top : top + height, left : left + width]
        if kind == "image":
            if image is not None:
                content[...] = self._image((height, width))
        elif kind in ("gt", "pred"):
            content[...] = full[self.indices(kind)]
        else:
            shown = None if image is None else self._image((height, width))
            content[...] = mixed_panel(
                kind,
                self.indices("gt"),
                self.indices("pred"),
                shown,
                self.space,
                overlay_alpha=self.opts.overlay_alpha,
            )

    def indices(self, role: str) -> np.ndarray:
        """The role's map resized to the content box, as palette indices; computed once."""
        if role not in self._indices:
            indices = np.empty(self.box[2:], dtype=index_dtype(self.space))
            self._write(role, indices)
            self._indices[role] = indices
        return self._indices[role]

    def _write(self, role: str, target: np.ndarray) -> None:
        if self.sample is not None:
            sampled = self.sample.gt if role == "gt" else self.sample.pred
        else:
            sampled = _sample_nearest(self.item.gt if role == "gt" else self.item.pred, target.shape)
        write_indices(target, sampled, self.space, self.item.files.get(role, self.source))

    def _image(self, size: tuple[int, int]) -> np.ndarray:
        assert self.item.image is not None
        if size not in self._images:
            self._images[size] = resize_image_bilinear(self.item.image, size)
        return self._images[size]


def compose_grid(
    items: Sequence[Item],
    space: IndexSpace,
    opts: ComposeOptions,
    *,
    source: str = "",
    samples: Sequence[RowSample | None] = (),
) -> Composite:
    """All items in one picture: item i's panels at grid row i // columns, column i % columns.

    The grid is min(columns, len(items)) cells wide; cells of a partial last row stay gutter-coloured. The
    picture is paletted unless is_rgb says otherwise. Raises ArtifactError (prefixed with `source`, or with the
    item's file) for a malformed item or an unknown class id. `samples` (per item, when given) are filled
    panel_samples; one made for another panel size is not used.
    """
    if not items:
        raise ValueError("compose_grid needs at least one item, got none")
    for item in items:
        check_item(item, source)
    rgb = is_rgb(items, space, opts)
    full = space.full_palette()
    panel_h, panel_w = opts.panel_size
    (height, width), corners = grid_layout(len(items), opts)
    if rgb:
        canvas = np.empty((height, width, 3), dtype=np.uint8)
        canvas[...] = full[space.gutter_slot]
    else:
        canvas = np.full((height, width), space.gutter_slot, dtype=np.uint8)
    for index, (item, item_corners) in enumerate(zip(items, corners, strict=True)):
        cell = _Cell(item, space, opts, source, samples[index] if index < len(samples) else None)
        for kind, (top, left) in zip(opts.panels, item_corners, strict=True):
            target = canvas[top : top + panel_h, left : left + panel_w]
            if rgb:
                cell.draw_rgb(kind, target)
            else:
                cell.draw_indices(kind, target)
    return Composite(pixels=canvas, palette=None if rgb else full.copy())


def grid_layout(count: int, opts: ComposeOptions) -> tuple[tuple[int, int], list[list[tuple[int, int]]]]:
    """The (height, width) of a grid of `count` items, and the (top, left) corner of each item's panels.

    Item i sits at row i // columns, column i % columns; the grid is min(columns, count) cells wide. Headers
    are placed through this too, so they always sit over the panels they name.
    """
    panel_h, panel_w = opts.panel_size
    gap = opts.gutter
    cell_w = len(opts.panels) * (panel_w + gap) - gap
    columns = min(opts.columns, count)
    rows = -(-count // columns)
    corners = [
        [
            ((i // columns) * (panel_h + gap), (i % columns) * (cell_w + gap) + j * (panel_w + gap))
            for j in range(len(opts.panels))
        ]
        for i in range(count)
    ]
    return (rows * (panel_h + gap) - gap, columns * (cell_w + gap) - gap), corners


def compose_pair(item: Item, space: IndexSpace, opts: ComposeOptions, *, source: str = "") -> Composite:
    """One item's panels side by side, in `opts.panels` order, `opts.gutter` px apart."""
    return compose_grid([item], space, opts, source=source)
