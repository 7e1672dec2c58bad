"""Palette-index space: class id i is index i, and reserved indices past the last class stand for ignore, pad,
gutter, the text backdrop and the text's ink levels. Pure numpy.

Every picture segwatch draws from label maps (panels, column headers, legend) lives in this space, so it can be
written as an 8-bit paletted PNG when the indices fit a byte. The one mapping from class ids to indices, and
the one refusal of an id that is neither a class nor ignore_index, live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segwatch.errors import ArtifactError
from segwatch.render.lettering import TEXT_LEVELS
from segwatch.render.palettes import RESERVED_ROLES, ink_for, nearest_free, reserved_colours

__all__ = ["RESERVED_SLOTS", "Composite", "IndexSpace", "index_dtype", "to_indices", "write_indices"]

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


def check_ignore_index(ignore_index: int | None, num_classes: int) -> None:
    """ignore_index must be no class id: it gets a reserved index of its own, apart from the classes' (the
    config calls this too, so `check-config` refuses what the renderer would)."""
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        raise ValueError(
            f"expected an id outside the classes 0..{num_classes - 1} (compose.num_classes), or null; "
            f"got {ignore_index}, which is also a class id"
        )


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
        check_ignore_index(self.ignore_index, self.num_classes)
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


@dataclass(frozen=True, eq=False)
class Composite:
    pixels: np.ndarray  # (H, W) uint8 palette indices, or (H, W, 3) uint8 RGB
    palette: np.ndarray | None  # (K, 3) uint8 when pixels are indices, else None


def index_dtype(space: IndexSpace) -> type[np.unsignedinteger]:
    """The narrowest unsigned dtype that holds every index of `space`."""
    return np.uint8 if space.fits_8bit else np.uint32


def to_indices(labels: np.ndarray, space: IndexSpace, source: str) -> np.ndarray:
    """Class ids → palette indices (ignore_index → its slot), in index_dtype(space); raises ArtifactError,
    prefixed with `source`, for an id that is neither a class nor ignore_index."""
    values = labels.astype(np.int64, copy=False)
    n = space.num_classes
    if values.min() >= 0 and values.max() < n:
        return values.astype(index_dtype(space))
    outside = (values < 0) | (values >= n)
    if space.ignore_index is not None:
        outside &= values != space.ignore_index
    if outside.any():
        bad = int(values[outside][0])
        raise ArtifactError(
            f"{source}: class id {bad} outside [0, {n}) and not ignore_index {space.ignore_index}"
        )
    # Every out-of-range value is ignore_index here (ignore_index is never a class id).
    return np.where(values == space.ignore_index, space.ignore_slot, values).astype(index_dtype(space))


def write_indices(target: np.ndarray, labels: np.ndarray, space: IndexSpace, source: str) -> None:
    """to_indices(labels) written into `target` (of index_dtype(space)), without a temporary in the common
    case.

    Class ids are their own indices, so the ids are copied as they are, and only when some id is past the
    classes are they checked and ignore_index moved to its slot, all in place with a few vectorised passes.
    """
    n = space.num_classes
    ignore = space.ignore_index
    if labels.dtype != target.dtype:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high > np.iinfo(target.dtype).max:  # would wrap in the index dtype
            target[...] = to_indices(labels, space, source)
            return
    target[...] = labels
    if int(target.max()) < n:
        return
    if ignore is None or not n < ignore <= np.iinfo(target.dtype).max:
        target[...] = to_indices(labels, space, source)  # some id past the classes, and it is no ignore
        return
    past = target >= n
    if (past & (target != ignore)).any():
        target[...] = to_indices(labels, space, source)  # names the first stray id
        return
    # Every id past the classes is ignore_index: move it down to its slot. (Arithmetic, because numpy's
    # minimum against a scalar and masked assignment are several times slower on uint8.)
    step = target.dtype.type(ignore - space.ignore_slot)
    np.subtract(target, np.multiply(past.view(np.uint8), step), out=target)
