"""What rendering one epoch needs to know, as plain values fixed for a configuration.

Built once per config at the edge (`segwatch.plan`); everything under `render/` takes this, never the config.
The viewer's data has a plan of its own (`render.viewer.ViewerPlan`), built beside this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from segwatch.render.indexspace import IndexSpace
    from segwatch.render.items import ClassAxis, PredKind


__all__ = ["EpochPlan", "Layout", "Legend", "Resize", "Select"]

# The words of the picture, owned here and used by the config to check what people write.
Layout = Literal["pair", "grid"]  # one picture per item, or one grid of them per epoch
Select = Literal["first", "worst", "random"]  # which items are shown
Legend = Literal["none", "present", "all"]  # which classes the legend lists (render.legend)
Resize = Literal["letterbox", "stretch"]  # how a map fits its panel (the composer, and compose.RESIZE_MODES)


@dataclass(frozen=True, eq=False)
class EpochPlan:
    """How an epoch's arrays become items, which items are shown and how, what is measured and tagged."""

    # Classes: ids, their colours and the reserved indices (ignore, pad, gutter, text).
    space: IndexSpace
    class_names: tuple[str, ...]
    palette_name: str  # a built-in palette's name, or "custom": for the image description
    # Arrays to items.
    class_axis: ClassAxis
    pred_kind: PredKind
    threshold: float
    volume_slices: int  # 0: arrays are batches of 2-D items, not volumes
    # The picture.
    layout: Layout
    panels: tuple[str, ...]
    panel_size: tuple[int, int]  # (height, width)
    resize: Resize
    columns: int | None  # None: chosen for the picture's aspect (compose.columns: auto)
    max_width: int
    max_items: int
    select: Select
    seed: int
    overlay_alpha: float
    headers: bool
    legend: Legend
    # Metrics: `metrics` is already off when there are too many classes to keep a confusion matrix for.
    metrics: bool
    per_class: bool
    confusion_matrix: bool
    tag_prefix: str
    # How many items the viewer's data shows (0: no viewer data), so that many are loaded.
    viewer_items: int

    @property
    def num_classes(self) -> int:
        return self.space.num_classes

    @property
    def ignore_index(self) -> int | None:
        return self.space.ignore_index
