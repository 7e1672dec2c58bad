"""Label maps (and images) → one composite picture: panels side by side, items in a grid. Pure numpy.

Label panels live in palette-index space: class id i is index i, and three reserved indices past the last
class stand for ignore, pad and gutter. The composite can then be written as an 8-bit paletted PNG, which
is smaller and much faster to encode than RGB. Whenever that is impossible (more than 253 classes, or an
image panel to show) the same indices are looked up in the palette and the composite is RGB.

Labels are only ever resized by nearest-neighbour index sampling: interpolation would invent class ids,
and sampling reads just the sampled rows of a map still on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import Stored, sample_rows
from segwatch.render.items import Item
from segwatch.render.lettering import TEXT_LEVELS
from segwatch.render.palettes import RESERVED_ROLES, ink_for, nearest_free, reserved_colours

__all__ = [
    "PANEL_KINDS",
    "ComposeOptions",
    "Composite",
    "IndexSpace",
    "compose_grid",
    "compose_pair",
    "content_box",
    "resize_image_bilinear",
    "resize_labels_nearest",
]

PANEL_KINDS: tuple[str, ...] = ("image", "gt", "pred")

# Indices past the classes: ignore, pad, gutter, backdrop (behind header and legend text), then the text's
# ink levels from faint to full.
RESERVED_SLOTS = len(RESERVED_ROLES) + TEXT_LEVELS


def _reserved_colours(palette: np.ndarray) -> np.ndarray:
    """Colours of every reserved index: the roles' colours (each far from every class colour, see
    palettes.reserved_colours), then ink levels blended from the backdrop to a contrasting ink."""
    roles = reserved_colours(palette)
    backdrop = roles[-1].astype(np.float64)
    ink = ink_for(roles[-1]).astype(np.float64)
    levels = [backdrop + (ink - backdrop) * (level / TEXT_LEVELS) for level in range(1, TEXT_LEVELS + 1)]
    taken = np.concatenate([palette, roles])
    chosen = [roles]
    for level in np.rint(np.array(levels)).astype(np.uint8):
        # Text pixels must never decode as a class: the nearest colour not in use.
        colour = nearest_free(level, taken)
        taken = np.concatenate([taken, colour[None]])
        chosen.append(colour[None])
    return np.concatenate(chosen)


@dataclass(frozen=True, eq=False)
class IndexSpace:
    """Class ids plus reserved indices that cannot collide with one: ignore → num_classes, pad → + 1,
    gutter → + 2, backdrop (behind text) → + 3, text ink levels → + 4 .. (faint to full)."""

    num_classes: int
    ignore_index: int | None
    palette: np.ndarray  # (num_classes, 3) uint8 class colours
    _full: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            raise ValueError(
                f"ignore_index {self.ignore_index} is also a class id in [0, {self.num_classes}); "
                "choose an ignore_index outside the class range, or none"
            )
        palette = np.asarray(self.palette)
        if palette.shape != (self.num_classes, 3):
            raise ValueError(f"palette must have shape ({self.num_classes}, 3), got {palette.shape}")
        if palette.dtype != np.uint8:
            raise ValueError(f"palette must be uint8, got {palette.dtype}")
        palette = palette.copy()
        palette.flags.writeable = False
        full = np.concatenate([palette, _reserved_colours(palette)])
        full.flags.writeable = False
        object.__setattr__(self, "palette", palette)
        object.__setattr__(self, "_full", full)

    @property
    def ignore_slot(self) -> int:
        return self.num_classes

    @property
    def pad_slot(self) -> int:
        return self.num_classes + 1

    @property
    def gutter_slot(self) -> int:
        return self.num_classes + 2

    @property
    def backdrop_slot(self) -> int:
        return self.num_classes + 3

    @property
    def ink_slot(self) -> int:
        """Full-strength text ink (also swatch borders); fainter levels sit just below it."""
        return self.num_classes + RESERVED_SLOTS - 1

    def text_slots(self) -> np.ndarray:
        """Index for each text level 0..TEXT_LEVELS: the backdrop, then faint to full ink."""
        return np.arange(self.backdrop_slot, self.backdrop_slot + TEXT_LEVELS + 1)

    def full_palette(self) -> np.ndarray:
        """(num_classes + RESERVED_SLOTS, 3) uint8: class colours, then the reserved colours."""
        return self._full

    @property
    def fits_8bit(self) -> bool:
        return self.num_classes + RESERVED_SLOTS <= 256


@dataclass(frozen=True)
class ComposeOptions:
    panel_size: tuple[int, int]  # (height, width) of each panel
    resize: Literal["letterbox", "stretch"]
    panels: tuple[str, ...]  # subset and order of PANEL_KINDS
    columns: int  # grid: items per row
    gutter: int = 2  # px between panels and between items

    def __post_init__(self) -> None:
        height, width = self.panel_size
        if height < 1 or width < 1:
            raise ValueError(f"panel_size must be two positive ints (height, width), got {self.panel_size}")
        if self.resize not in ("letterbox", "stretch"):
            raise ValueError(f"resize must be 'letterbox' or 'stretch', got {self.resize!r}")
        unknown = [p for p in self.panels if p not in PANEL_KINDS]
        if not self.panels or unknown or len(set(self.panels)) != len(self.panels):
            raise ValueError(f"panels must be distinct names from {PANEL_KINDS}, got {self.panels}")
        if self.columns < 1:
            raise ValueError(f"columns must be at least 1, got {self.columns}")
        if self.gutter < 0:
            raise ValueError(f"gutter must be >= 0, got {self.gutter}")


@dataclass(frozen=True, eq=False)
class Composite:
    pixels: np.ndarray  # (H, W) uint8 palette indices, or (H, W, 3) uint8 RGB
    palette: np.ndarray | None  # (K, 3) uint8 when pixels are indices, else None


def content_box(
    source_hw: tuple[int, int], panel_hw: tuple[int, int], resize: Literal["letterbox", "stretch"]
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


def _nearest_taps(size_in: int, size_out: int) -> np.ndarray | slice:
    """Source index under the centre of each output pixel: floor((i + 0.5) * size_in / size_out).

    When size_out divides size_in those are every k-th index from k // 2, returned as that slice.
    """
    if size_in % size_out == 0:
        step = size_in // size_out
        return slice(step // 2, step // 2 + step * (size_out - 1) + 1, step)
    return ((2 * np.arange(size_out, dtype=np.int64) + 1) * size_in) // (2 * size_out)


def _sample_nearest(labels: Stored, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour samples of an (H, W) map: a strided view for whole-number factors, else a copy.

    Either way only the sampled rows are read (from a file, by offset).
    """
    rows = _nearest_taps(labels.shape[0], size[0])
    cols = _nearest_taps(labels.shape[1], size[1])
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


def _index_dtype(space: IndexSpace) -> type[np.unsignedinteger]:
    return np.uint8 if space.fits_8bit else np.uint32


def _to_indices(sampled: np.ndarray, space: IndexSpace, source: str) -> np.ndarray:
    """Sampled class ids → palette indices, refusing ids that are neither a class nor ignore_index."""
    values = sampled.astype(np.int64, copy=False)
    n = space.num_classes
    if values.min() >= 0 and values.max() < n:
        return values.astype(_index_dtype(space))
    outside = (values < 0) | (values >= n)
    if space.ignore_index is not None:
        outside &= values != space.ignore_index
    if outside.any():
        bad = int(values[outside][0])
        raise ArtifactError(
            f"{source}: class id {bad} outside [0, {n}) and not ignore_index {space.ignore_index}"
        )
    # Every out-of-range value is ignore_index here (ignore_index is never a class id).
    return np.where(values == space.ignore_index, space.ignore_slot, values).astype(_index_dtype(space))


def _write_indices(target: np.ndarray, sampled: np.ndarray, space: IndexSpace, source: str) -> None:
    """Write the palette indices of sampled class ids into `target`; refuse ids that are neither a class nor
    ignore_index.

    Class ids are their own indices, so the ids are copied as they are, and only when some id is past the
    classes are they checked and ignore_index moved to its slot, all in place with a few vectorised passes.
    """
    n = space.num_classes
    ignore = space.ignore_index
    if sampled.dtype != target.dtype:
        low, high = int(sampled.min()), int(sampled.max())
        if low < 0 or high > np.iinfo(target.dtype).max:  # would wrap in the index dtype
            target[...] = _to_indices(sampled, space, source)
            return
    target[...] = sampled
    if int(target.max()) < n:
        return
    if ignore is None or not n < ignore <= np.iinfo(target.dtype).max:
        target[...] = _to_indices(sampled, space, source)  # some id past the classes, and it is no ignore
        return
    past = target >= n
    if (past & (target != ignore)).any():
        target[...] = _to_indices(sampled, space, source)  # names the first stray id
        return
    # Every id past the classes is ignore_index: move it down to its slot. (Arithmetic, because numpy's
    # minimum against a scalar and masked assignment are several times slower on uint8.)
    step = target.dtype.type(ignore - space.ignore_slot)
    np.subtract(target, np.multiply(past.view(np.uint8), step), out=target)


def _draw_labels(
    target: np.ndarray, labels: Stored, space: IndexSpace, opts: ComposeOptions, source: str
) -> None:
    """Fill a panel-sized index array: the resized label map in its content box, pad around it."""
    top, left, height, width = content_box(labels.shape[:2], opts.panel_size, opts.resize)
    if (height, width) != opts.panel_size:
        target[...] = space.pad_slot
    sampled = _sample_nearest(labels, (height, width))
    _write_indices(target[top : top + height, left : left + width], sampled, space, source)


def _label_panel(labels: Stored, space: IndexSpace, opts: ComposeOptions, source: str) -> np.ndarray:
    panel = np.empty(opts.panel_size, dtype=_index_dtype(space))
    _draw_labels(panel, labels, space, opts, source)
    return panel


def _image_panel(image: Stored, space: IndexSpace, opts: ComposeOptions) -> np.ndarray:
    top, left, height, width = content_box(image.shape[:2], opts.panel_size, opts.resize)
    panel = np.empty((*opts.panel_size, 3), dtype=np.uint8)
    panel[...] = space.full_palette()[space.pad_slot]
    panel[top : top + height, left : left + width] = resize_image_bilinear(image, (height, width))
    return panel


def _check_item(item: Item, source: str) -> None:
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


def compose_grid(
    items: Sequence[Item], space: IndexSpace, opts: ComposeOptions, *, source: str = ""
) -> Composite:
    """All items in one picture: item i's panels at grid row i // columns, column i % columns.

    The grid is min(columns, len(items)) cells wide; cells of a partial last row stay gutter-coloured.
    Raises ArtifactError (prefixed with `source`) for a malformed item or an unknown class id.
    """
    if not items:
        raise ValueError("compose_grid needs at least one item, got none")
    for item in items:
        _check_item(item, source)
    has_image = "image" in opts.panels and any(item.image is not None for item in items)
    rgb = has_image or not space.fits_8bit
    full = space.full_palette()

    panel_h, panel_w = opts.panel_size
    (height, width), corners = grid_layout(len(items), opts)

    if rgb:
        canvas = np.empty((height, width, 3), dtype=np.uint8)
        canvas[...] = full[space.gutter_slot]
    else:
        canvas = np.full((height, width), space.gutter_slot, dtype=np.uint8)

    for item, item_corners in zip(items, corners, strict=True):
        for kind, (top, left) in zip(opts.panels, item_corners, strict=True):
            target = canvas[top : top + panel_h, left : left + panel_w]
            if kind == "image":
                if item.image is not None:
                    target[...] = _image_panel(item.image, space, opts)
                else:
                    target[...] = full[space.pad_slot] if rgb else space.pad_slot
                continue
            labels = item.gt if kind == "gt" else item.pred
            where = item.files.get(kind, source)
            if rgb:
                target[...] = full[_label_panel(labels, space, opts, where)]
            else:
                _draw_labels(target, labels, space, opts, where)
    return Composite(pixels=canvas, palette=None if rgb else full.copy())


class GridOptions(Protocol):
    """What a grid's geometry depends on; both composers' option types have it."""

    @property
    def panel_size(self) -> tuple[int, int]: ...
    @property
    def panels(self) -> tuple[str, ...]: ...
    @property
    def columns(self) -> int: ...
    @property
    def gutter(self) -> int: ...


def grid_layout(count: int, opts: GridOptions) -> tuple[tuple[int, int], list[list[tuple[int, int]]]]:
    """The (height, width) of a grid of `count` items, and the (top, left) corner of each item's panels.

    Item i sits at row i // columns, column i % columns; the grid is min(columns, count) cells wide. Every
    composer places panels through this, so a grid never scrambles where an item lands.
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
