"""The config sections of what is drawn and measured: `compose`, `metrics` and the viewer's data (`viewer`)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from segwatch.config.kinds import (
    PaletteSpec,
    columns_or_auto,
    flag,
    integer,
    one_of,
    optional_integer,
    panel_size,
    shown,
    unit_interval,
)
from segwatch.render.compose import RESIZE_MODES, check_panels
from segwatch.render.epochplan import Layout, Legend, Resize, Select
from segwatch.render.indexspace import check_ignore_index
from segwatch.render.items import ClassAxis, PredKind
from segwatch.render.palettes import build_palette


def panels_list(value: object) -> tuple[str, ...]:
    try:
        return check_panels(value)
    except ValueError as exc:
        raise ValueError(f"{exc}, got {shown(value)}") from None


class ComposeConfig(BaseModel):
    """How label maps become coloured images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Annotated[Layout, one_of(Layout)] = Field(
        default="grid",
        description="grid: one image per epoch tiling up to max_items items; pair: one image per item.",
    )
    panels: Annotated[tuple[str, ...], BeforeValidator(panels_list)] = Field(
        default=("gt", "pred"),
        description="The panels of one item, left to right: an ordered, non-empty subset of image, gt, pred, "
        "overlay (prediction blended on the image), error (wrong pixels red) and boundary (prediction "
        "boundaries over the ground truth). Listing image or overlay makes an image file part of every epoch.",
    )
    size: Annotated[tuple[int, int], BeforeValidator(panel_size)] = Field(
        default=(256, 256), description="Panel height and width in pixels: two positive integers."
    )
    resize: Annotated[Resize, one_of(RESIZE_MODES)] = Field(
        default="letterbox",
        description="letterbox keeps the aspect ratio and pads; stretch fills the panel. Label maps are "
        "always resized with nearest-neighbour sampling, so no class is invented.",
    )
    columns: Annotated[int | Literal["auto"], BeforeValidator(columns_or_auto)] = Field(
        default="auto",
        description="Items per row of a grid: auto (the number that makes the picture closest to 4:3, the "
        "shape TensorBoard shows best) or an integer >= 1.",
    )
    max_width: Annotated[int, integer(64)] = Field(
        default=1536,
        description="Widest picture in px (>= 64): panels shrink, keeping their aspect, rather than let a "
        "grid grow wider (TensorBoard shows every image scaled to its ~350 px card).",
    )
    max_items: Annotated[int, integer(1)] = Field(
        default=16, description="Most items of an epoch that are shown (>= 1), chosen by select."
    )
    select: Annotated[Select, one_of(Select)] = Field(
        default="first",
        description="Which items are shown: first (in dump order), worst (lowest per-item mIoU first, also "
        "logged under its own tag <prefix>/worst), or random (a fixed sample drawn with seed).",
    )
    seed: Annotated[int, integer(0)] = Field(
        default=0, description="Seed of select: random; the same seed shows the same items every epoch."
    )
    overlay_alpha: Annotated[float, BeforeValidator(unit_interval)] = Field(
        default=0.4,
        description="Weight of the prediction colour over the image in the overlay panel; in (0, 1). 0.4 "
        "keeps the image readable under dark palettes (VOC) and the classes tellable apart.",
    )
    headers: Annotated[bool, BeforeValidator(flag)] = Field(
        default=True,
        description="Name each panel column (image, ground truth, prediction, ...) in a line above the grid.",
    )
    legend: Annotated[Legend, one_of(Legend)] = Field(
        default="present",
        description="Class colour legend below the image: none, present (classes in the items shown) or all.",
    )
    num_classes: Annotated[int, integer(1, 65536)] = Field(
        default=21, description="Number of classes, ids 0..num_classes-1 (1 to 65536)."
    )
    class_names: tuple[str, ...] = Field(
        default=(),
        description="Optional class names, one per class in id order; an empty list means unnamed classes.",
    )
    palette: PaletteSpec = Field(
        default="voc",
        description="Class colours: voc, cityscapes, ade20k, or a list of [r, g, b] colours for classes 0, "
        "1, ... (classes beyond the list get distinct generated colours).",
    )
    ignore_index: Annotated[int | None, BeforeValidator(optional_integer)] = Field(
        default=255,
        validate_default=True,
        description="Label of pixels that belong to no class (drawn in their own colour, left out of "
        "metrics), or null if there is none.",
    )
    class_axis: Annotated[ClassAxis, one_of(ClassAxis)] = Field(
        default="first",
        description="Where score predictions keep their class axis: first for (N, C, H, W), last for "
        "(N, H, W, C).",
    )
    pred_kind: Annotated[PredKind, one_of(PredKind)] = Field(
        default="auto",
        description="What a prediction array holds: labels (class ids, integer or whole-number floats, gt's "
        "shape), scores (one float channel per class on class_axis, argmax-ed), probability (a [0, 1] map of "
        "class 1, gt's shape or one channel, thresholded; needs num_classes 2), or auto: integers are labels; "
        "floats with gt's shape are labels when every value is a whole number, a probability when "
        "num_classes is 2 and values lie in [0, 1], else the epoch is set aside with the reason; floats "
        "with a class axis are scores.",
    )
    threshold: Annotated[float, BeforeValidator(unit_interval)] = Field(
        default=0.5,
        description="Probability above which a probability map (pred_kind probability) counts as class 1; "
        "in (0, 1).",
    )
    volume_slices: Annotated[int, integer(0)] = Field(
        default=0,
        description="3-D label volumes: with N > 0, gt (D, H, W) is one volume and (N, D, H, W) a batch of "
        "volumes, each shown as a montage of N evenly spaced slices (metrics count every voxel); 0: off.",
    )

    @field_validator("class_names", mode="before")
    @classmethod
    def _one_name_per_class(cls, value: object, info: ValidationInfo) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not all(
            isinstance(name, str) and name.strip() for name in value
        ):
            raise ValueError(f"expected a list of non-empty names, got {shown(value)}")
        repeated = sorted(name for name, times in Counter(value).items() if times > 1)
        if repeated:
            # Names label per-class tags and legends; two classes with one name could not be told apart.
            raise ValueError(f"expected distinct names, got {', '.join(map(repr, repeated))} more than once")
        num_classes = info.data.get("num_classes")
        if value and num_classes is not None and len(value) != num_classes:
            raise ValueError(f"expected {num_classes} names (one per class), got {len(value)}")
        return tuple(value)

    @field_validator("palette", mode="before")
    @classmethod
    def _buildable_palette(cls, value: object, info: ValidationInfo) -> PaletteSpec:
        if not isinstance(value, str | list | tuple):
            raise ValueError(f"expected a palette name or a list of [r, g, b] colours, got {shown(value)}")
        # An invalid num_classes is reported on its own; one class still checks the name and the colours.
        build_palette(value, info.data.get("num_classes", 1))
        return value if isinstance(value, str) else tuple(tuple(colour) for colour in value)

    @field_validator("ignore_index", mode="after")
    @classmethod
    def _ignore_index_is_no_class(cls, value: int | None, info: ValidationInfo) -> int | None:
        # The renderer's own check, so check-config and a reload refuse what rendering would.
        num_classes = info.data.get("num_classes")
        if num_classes is not None:
            check_ignore_index(value, num_classes)
        return value


class MetricsConfig(BaseModel):
    """Segmentation metrics per run and epoch, from the same arrays as the images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, BeforeValidator(flag)] = Field(
        default=True,
        description="Log mIoU, pixel accuracy and mean class accuracy (and dice for two classes) as scalars, "
        "computed over every item of the epoch at full resolution.",
    )
    confusion_matrix: Annotated[bool, BeforeValidator(flag)] = Field(
        default=True, description="Log the row-normalised confusion matrix as an image."
    )
    per_class: Annotated[bool, BeforeValidator(flag)] = Field(
        default=True, description="Log each class's IoU as a scalar and a table of them as text."
    )


def _viewer_items(value: object) -> int | tuple[int, ...]:
    # A count means "the first N items"; a list names item indices. Either way the set is fixed across
    # epochs, so the viewer's slider compares the same samples.
    if isinstance(value, bool):
        raise ValueError(f"expected a count or a list of item indices, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"expected a count >= 1 or a list of item indices, got {value!r}")
        return value
    if isinstance(value, list | tuple) and value:
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
            raise ValueError(f"expected item indices >= 0, got {list(value)!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"item indices must be distinct, got {list(value)!r}")
        return tuple(value)
    raise ValueError(f"expected a count or a non-empty list of item indices, got {value!r}")


class ViewerConfig(BaseModel):
    """Data for the segwatch viewer, the interactive TensorBoard plugin (class ids, images, per-item metrics)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, BeforeValidator(flag)] = Field(
        default=True,
        description="Write the viewer's data each epoch (under the plugin name segwatch_viewer).",
    )
    max_side: Annotated[int, integer(16, 8192)] = Field(
        default=1024,
        description="Longest side of the label maps and images stored for the viewer; larger items are "
        "resized with nearest sampling, so class ids stay exact.",
    )
    items: Annotated[int | tuple[int, ...], BeforeValidator(_viewer_items)] = Field(
        default=16,
        description="Which items the viewer shows every epoch: a count (the first N) or a list of item "
        "indices.",
    )
