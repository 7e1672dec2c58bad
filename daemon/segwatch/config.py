"""The YAML configuration: validated models, loading with environment overrides, and rendering back to YAML.

Values people type (durations, sizes, counts) are parsed into plain floats and ints here, so nothing
downstream ever sees "200ms". Relative paths are resolved against the config file's directory, so the
daemon behaves the same whatever directory it was started from.
"""

from __future__ import annotations

import difflib
import os
import re
import reprlib
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from segwatch.errors import ConfigError
from segwatch.intake.layout import DEFAULT_PATTERN, DumpLayout, check_pattern
from segwatch.render.palettes import build_palette
from segwatch.units import (
    format_count,
    format_duration,
    format_size,
    parse_count,
    parse_duration,
    parse_size,
)

__all__ = [
    "ENV_PREFIX",
    "ComposeConfig",
    "Config",
    "HttpConfig",
    "LimitsConfig",
    "MetricsConfig",
    "ServiceConfig",
    "TensorBoardConfig",
    "ViewerConfig",
    "WatchConfig",
    "config_from_mapping",
    "load_config",
    "render_config",
]

ENV_PREFIX = "SEGWATCH_"

Observer = Literal["auto", "inotify", "polling"]
Layout = Literal["pair", "grid"]
Panel = Literal["image", "gt", "pred", "overlay", "error", "boundary"]
# Panels drawn over the input image: listing one makes an image file part of every epoch.
IMAGE_PANELS: tuple[str, ...] = ("image", "overlay")
Legend = Literal["none", "present", "all"]
Select = Literal["first", "worst", "random"]
Resize = Literal["letterbox", "stretch"]
ClassAxis = Literal["first", "last"]
PredKind = Literal["auto", "labels", "scores", "probability"]
PaletteSpec = str | tuple[tuple[int, int, int], ...]

# A scheme such as gs:// or s3:// marks a logdir that TensorFlow's filesystem layer opens, not a local path.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


# A config value quoted in a message is clipped: one line per problem, whatever a file (or an alias bomb) holds.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80
_SHOWN.maxdict = _SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxset = 6
# Values a YAML document may expand to through its aliases (`*anchor`); a real config has a few hundred.
MAX_YAML_VALUES = 10_000


def _shown(value: object) -> str:
    """repr(value), clipped; never formats an unbounded number or walks an unbounded structure."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    try:
        return _SHOWN.repr(value)
    except Exception:
        return f"a {type(value).__name__} that cannot be shown"


# --- value kinds: each parses what people write and says what it expected when that fails -------------


def _one_of(kind: object) -> BeforeValidator:
    choices = get_args(kind)

    def check(value: object) -> object:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {_shown(value)}")
        return value

    return BeforeValidator(check)


def _integer(low: int, high: int | None = None) -> BeforeValidator:
    wanted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def check(value: object) -> int:
        # bool is an int subclass, and YAML turns `yes` into True: that is never a count.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {wanted}, got {_shown(value)}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected {wanted}, got {_shown(value)}")
        return value

    return BeforeValidator(check)


def _duration(*, allow_zero: bool) -> BeforeValidator:
    def check(value: object) -> float:
        seconds = parse_duration(value)
        if seconds < 0 or (seconds == 0 and not allow_zero):
            wanted = "a duration >= 0" if allow_zero else "a positive duration"
            raise ValueError(f"expected {wanted}, got {_shown(value)}")
        return seconds

    return BeforeValidator(check)


def _positive(parse: Callable[[object], int], what: str) -> BeforeValidator:
    def check(value: object) -> int:
        amount = parse(value)
        if amount <= 0:
            raise ValueError(f"expected a positive {what}, got {_shown(value)}")
        return amount

    return BeforeValidator(check)


def _count_text(count: int) -> str | int:
    text = format_count(count)
    # A bare number stays a YAML int rather than becoming the quoted string '1234'.
    return count if text == str(count) else text


_AS_DURATION = PlainSerializer(format_duration, return_type=str, when_used="json")
Seconds = Annotated[float, _duration(allow_zero=True), _AS_DURATION]
PositiveSeconds = Annotated[float, _duration(allow_zero=False), _AS_DURATION]
Bytes = Annotated[int, _positive(parse_size, "size"), PlainSerializer(format_size, when_used="json")]
Count = Annotated[int, _positive(parse_count, "count"), PlainSerializer(_count_text, when_used="json")]


def _backoff(value: object) -> tuple[float, float]:
    wanted = "two positive durations [first, longest] with first <= longest"
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"expected {wanted}, got {_shown(value)}")
    first, longest = (parse_duration(part) for part in value)
    if not 0 < first <= longest:
        raise ValueError(f"expected {wanted}, got {_shown(value)}")
    return first, longest


def _panel_size(value: object) -> tuple[int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in value)
    ):
        raise ValueError(f"expected two positive integers, got {_shown(value)}")
    return value[0], value[1]


def _panels(value: object) -> tuple[str, ...]:
    choices = get_args(Panel)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(panel, str) and panel in choices for panel in value)
        or len(set(value)) != len(value)
    ):
        raise ValueError(
            f"expected a non-empty list of distinct panels from {', '.join(choices)}, got {_shown(value)}"
        )
    return tuple(value)


def _unit_interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"expected a number between 0 and 1 (exclusive), got {_shown(value)}")
    return float(value)


def _flag(value: object) -> bool:
    # Only true/false (YAML's yes/no included): "0" or "off" typed as a string is a mistake, not a choice.
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_shown(value)}")
    return value


def _host(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value
        or not re.fullmatch(r"[A-Za-z0-9.:%-]+", value)
        or value.startswith(("-", "."))
    ):
        raise ValueError(
            f"expected an IP address or host name such as 127.0.0.1, 0.0.0.0 or ::, got {_shown(value)}"
        )
    return value


def _columns(value: object) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected auto or an integer >= 1, got {value!r}")
    return value


def _optional_integer(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"expected an integer or null, got {_shown(value)}")
    return value


def _retention(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(
            "expected null (keep every dump file), 0 (remove an epoch's files once logged) or the number of "
            f"logged epochs per run whose files are kept, got {value!r}"
        )
    return value


def _path_text(value: object, wanted: str) -> str:
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected {wanted}, got {_shown(value)}")
    return text


def resolve_under(base: Path, text: str) -> Path:
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        raise ValueError(
            f"expected a path whose ~ can be expanded (no home directory known), got {_shown(text)}"
        ) from None
    # Joined, not resolved: resolving would follow symlinks and change what a later `..` refers to.
    return path if path.is_absolute() else base / path


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, Mapping) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def _check_logdir_run(text: str) -> None:
    """`{run}` in a logdir: at most once, as a whole path segment, never in a URL's scheme or host."""
    count = text.count("{run}")
    if count == 0:
        return
    if count > 1:
        raise ValueError(f"expected '{{run}}' at most once, got {_shown(text)}")
    scheme = _URL.match(text)
    path = text[scheme.end() :] if scheme else text
    if scheme:
        host, slash, path = path.partition("/")
        if "{run}" in host or not slash:
            raise ValueError(f"expected '{{run}}' in the path of the URL, not its host, got {_shown(text)}")
    if "{run}" not in path.split("/"):
        raise ValueError(
            f"expected '{{run}}' as a whole path segment such as '/runs/{{run}}/tb', got {_shown(text)}"
        )


def _keyless_pattern(value: object, **kind: bool) -> str:
    """layout.check_pattern, its message without the key: the error's location already names the key."""
    try:
        return check_pattern(value, key="", **kind)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from None


# --- the models ---------------------------------------------------------------------------------------


class WatchConfig(BaseModel):
    """Where the dumps are and how they are noticed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(
        description="The dump root the training job writes into. A relative path is relative to the "
        "directory of the config file."
    )
    pattern: str = Field(
        default=DEFAULT_PATTERN,
        description="Where a dump file sits under the root. Must contain {epoch} and {role}; {run} is "
        "optional, and a leading '{run}/' also matches a flat single-run layout. Relative, with no '..' "
        "segments.",
    )
    fixed_gt: Path | None = Field(
        default=None,
        description="One ground-truth file shared by every epoch (a fixed validation set), or null to read a "
        "gt file per epoch. A relative path is relative to the root.",
    )
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="Per-role patterns overriding `pattern`: gt, pred or image mapped to a pattern such as "
        "'{run}/preds/pred_e{epoch}.npy', an archive member such as '{run}/epoch_{epoch}.npz:gt', or a fixed "
        "file without placeholders (relative to the root) shared by every epoch.",
    )
    trigger: str | None = Field(
        default=None,
        description="A file whose appearance declares an epoch written, e.g. a checkpoint "
        "'{run}/checkpoints/ckpt-{epoch}.index' or a marker '{run}/epoch_{epoch}/_SUCCESS'; its arrays are "
        "then read at once (no settle window), or null.",
    )
    step_from: Annotated[Literal["epoch", "step"], _one_of(Literal["epoch", "step"])] = Field(
        default="epoch",
        description="Which number of the path orders epochs and is the TensorBoard step: epoch ({epoch}) or "
        "step ({step}); every per-epoch pattern must contain it.",
    )
    observer: Annotated[Observer, _one_of(Observer)] = Field(
        default="auto",
        description="How changes are noticed: inotify, polling, or auto (polling on network and FUSE "
        "filesystems, where inotify misses other machines' writes).",
    )
    poll_interval: PositiveSeconds = Field(
        default=1.0, description="How often the polling observer looks for changes."
    )
    settle: Seconds = Field(
        default=0.2, description="How long an epoch's files must stay unchanged before they are read."
    )
    rescan_interval: Seconds = Field(
        default=60.0,
        description="Period of a full rescan of the root, catching anything the observer missed; 0 disables.",
    )
    incomplete_timeout: PositiveSeconds = Field(
        default=600.0,
        description="A file still shorter than its header promises after this long is reported (once).",
    )
    retention: Annotated[int | None, BeforeValidator(_retention)] = Field(
        default=None,
        description="Remove dump files once they are logged, so the dump volume never fills: null keeps "
        "everything, N keeps the files of each run's last N logged epochs, 0 removes an epoch's files as soon "
        "as it is committed. Only the gt/pred/image files segwatch read for a logged epoch are removed: never "
        "a set-aside epoch, a trigger, the fixed ground truth or a file changed since.",
    )

    @field_validator("root", mode="before")
    @classmethod
    def _root_under_base(cls, value: object, info: ValidationInfo) -> Path:
        text = _path_text(value, "a local directory path")
        if _URL.match(text):
            raise ValueError(f"expected a local directory path, got {_shown(value)}")
        return resolve_under(_base_dir(info), text)

    @field_validator("pattern", mode="before")
    @classmethod
    def _valid_pattern(cls, value: object) -> str:
        return _keyless_pattern(value, shorthand=True)

    @field_validator("roles", mode="before")
    @classmethod
    def _valid_roles(cls, value: object) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValueError(
                f"expected a mapping of roles (gt, pred, image) to patterns, got {_shown(value)}"
            )
        for role, text in value.items():
            if role not in ("gt", "pred", "image"):
                raise ValueError(f"expected roles among gt, pred, image, got {_shown(role)}")
            try:
                check_pattern(text, key=role)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return dict(value)

    @field_validator("trigger", mode="before")
    @classmethod
    def _valid_trigger(cls, value: object) -> str | None:
        if value is None:
            return None
        return _keyless_pattern(value, trigger=True).strip()

    @field_validator("fixed_gt", mode="before")
    @classmethod
    def _fixed_gt_under_root(cls, value: object, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        text = _path_text(value, "null or a path to a .npy file")
        root = info.data.get("root")
        return resolve_under(root if isinstance(root, Path) else _base_dir(info), text)


class TensorBoardConfig(BaseModel):
    """Where the summaries go and what they are called."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    logdir: str = Field(
        description="TensorBoard log directory: a local path (relative to the config file's directory) or "
        "a URL such as gs://bucket/path, kept verbatim. Each run writes to <logdir>/<run>/. With '{run}' as "
        "one whole path segment (e.g. '/runs/{run}/tb'), run R writes to the logdir with '{run}' replaced by "
        "R, beside the training job's own event files, and keeps its ledger there; the unnamed run (a flat "
        "dump) drops the segment ('/runs/tb'). Needs '{run}' in watch.pattern."
    )
    tag_prefix: str = Field(
        default="segwatch",
        description="First part of every tag segwatch writes; non-empty, no leading or trailing '/'.",
    )

    @field_validator("logdir", mode="before")
    @classmethod
    def _logdir_under_base(cls, value: object, info: ValidationInfo) -> str:
        text = _path_text(value, "a directory path or a URL such as gs://bucket/path")
        _check_logdir_run(text)
        return text if _URL.match(text) else str(resolve_under(_base_dir(info), text))

    @field_validator("tag_prefix", mode="before")
    @classmethod
    def _valid_tag_prefix(cls, value: object) -> str:
        if not isinstance(value, str) or not value.strip() or value.startswith("/") or value.endswith("/"):
            raise ValueError(
                f"expected a non-empty tag prefix without a leading or trailing '/', got {_shown(value)}"
            )
        return value


class ComposeConfig(BaseModel):
    """How label maps become coloured images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Annotated[Layout, _one_of(Layout)] = Field(
        default="grid",
        description="grid: one image per epoch tiling up to max_items items; pair: one image per item.",
    )
    panels: Annotated[tuple[Panel, ...], BeforeValidator(_panels)] = Field(
        default=("gt", "pred"),
        description="The panels of one item, left to right: an ordered, non-empty subset of image, gt, pred, "
        "overlay (prediction blended on the image), error (wrong pixels red) and boundary (prediction "
        "boundaries over the ground truth). Listing image or overlay makes an image file part of every epoch.",
    )
    size: Annotated[tuple[int, int], BeforeValidator(_panel_size)] = Field(
        default=(256, 256), description="Panel height and width in pixels: two positive integers."
    )
    resize: Annotated[Resize, _one_of(Resize)] = Field(
        default="letterbox",
        description="letterbox keeps the aspect ratio and pads; stretch fills the panel. Label maps are "
        "always resized with nearest-neighbour sampling, so no class is invented.",
    )
    columns: Annotated[int | Literal["auto"], BeforeValidator(_columns)] = Field(
        default="auto",
        description="Items per row of a grid: auto (the number that makes the picture closest to 4:3, the "
        "shape TensorBoard shows best) or an integer >= 1.",
    )
    max_width: Annotated[int, _integer(64)] = Field(
        default=1536,
        description="Widest picture in px (>= 64): panels shrink, keeping their aspect, rather than let a "
        "grid grow wider (TensorBoard shows every image scaled to its ~350 px card).",
    )
    max_items: Annotated[int, _integer(1)] = Field(
        default=16, description="Most items of an epoch that are shown (>= 1), chosen by select."
    )
    select: Annotated[Select, _one_of(Select)] = Field(
        default="first",
        description="Which items are shown: first (in dump order), worst (lowest per-item mIoU first, also "
        "logged under its own tag <prefix>/worst), or random (a fixed sample drawn with seed).",
    )
    seed: Annotated[int, _integer(0)] = Field(
        default=0, description="Seed of select: random; the same seed shows the same items every epoch."
    )
    overlay_alpha: Annotated[float, BeforeValidator(_unit_interval)] = Field(
        default=0.4,
        description="Weight of the prediction colour over the image in the overlay panel; in (0, 1). 0.4 "
        "keeps the image readable under dark palettes (VOC) and the classes tellable apart.",
    )
    headers: Annotated[bool, BeforeValidator(_flag)] = Field(
        default=True,
        description="Name each panel column (image, ground truth, prediction, ...) in a line above the grid.",
    )
    legend: Annotated[Legend, _one_of(Legend)] = Field(
        default="present",
        description="Class colour legend below the image: none, present (classes in the items shown) or all.",
    )
    num_classes: Annotated[int, _integer(1, 65536)] = Field(
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
    ignore_index: Annotated[int | None, BeforeValidator(_optional_integer)] = Field(
        default=255,
        validate_default=True,
        description="Label of pixels that belong to no class (drawn in their own colour, left out of "
        "metrics), or null if there is none.",
    )
    class_axis: Annotated[ClassAxis, _one_of(ClassAxis)] = Field(
        default="first",
        description="Where score predictions keep their class axis: first for (N, C, H, W), last for "
        "(N, H, W, C).",
    )
    pred_kind: Annotated[PredKind, _one_of(PredKind)] = Field(
        default="auto",
        description="What a prediction array holds: labels (class ids, integer or whole-number floats, gt's "
        "shape), scores (one float channel per class on class_axis, argmax-ed), probability (a [0, 1] map of "
        "class 1, gt's shape or one channel, thresholded; needs num_classes 2), or auto: integers are labels; "
        "floats with gt's shape are labels when every value is a whole number, a probability when "
        "num_classes is 2 and values lie in [0, 1], else the epoch is set aside with the reason; floats "
        "with a class axis are scores.",
    )
    threshold: Annotated[float, BeforeValidator(_unit_interval)] = Field(
        default=0.5,
        description="Probability above which a probability map (pred_kind probability) counts as class 1; "
        "in (0, 1).",
    )
    volume_slices: Annotated[int, _integer(0)] = Field(
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
            raise ValueError(f"expected a list of non-empty names, got {_shown(value)}")
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
            raise ValueError(f"expected a palette name or a list of [r, g, b] colours, got {_shown(value)}")
        # An invalid num_classes is reported on its own; one class still checks the name and the colours.
        build_palette(value, info.data.get("num_classes", 1))
        return value if isinstance(value, str) else tuple(tuple(colour) for colour in value)

    @field_validator("ignore_index", mode="after")
    @classmethod
    def _ignore_index_is_no_class(cls, value: int | None, info: ValidationInfo) -> int | None:
        # The renderer keeps ignore apart from the classes; checked here so check-config and a reload say so.
        num_classes = info.data.get("num_classes")
        if value is not None and num_classes is not None and 0 <= value < num_classes:
            raise ValueError(
                f"expected an id outside the classes 0..{num_classes - 1} (compose.num_classes), or null; "
                f"got {value}, which is also a class id"
            )
        return value


class MetricsConfig(BaseModel):
    """Segmentation metrics per run and epoch, from the same arrays as the images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, BeforeValidator(_flag)] = Field(
        default=True,
        description="Log mIoU, pixel accuracy and mean class accuracy (and dice for two classes) as scalars, "
        "computed over every item of the epoch at full resolution.",
    )
    confusion_matrix: Annotated[bool, BeforeValidator(_flag)] = Field(
        default=True, description="Log the row-normalised confusion matrix as an image."
    )
    per_class: Annotated[bool, BeforeValidator(_flag)] = Field(
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

    enabled: Annotated[bool, BeforeValidator(_flag)] = Field(
        default=True,
        description="Write the viewer's data each epoch (under the plugin name segwatch_viewer).",
    )
    max_side: Annotated[int, _integer(16, 8192)] = Field(
        default=1024,
        description="Longest side of the label maps and images stored for the viewer; larger items are "
        "resized with nearest sampling, so class ids stay exact.",
    )
    items: Annotated[int | tuple[int, ...], BeforeValidator(_viewer_items)] = Field(
        default=16,
        description="Which items the viewer shows every epoch: a count (the first N) or a list of item "
        "indices.",
    )


class LimitsConfig(BaseModel):
    """Caps that keep one bad or huge dump from exhausting the machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_bytes: Bytes = Field(
        default=4 * 2**30, description="Largest .npy file that is read; bigger files are set aside."
    )
    max_pixels: Count = Field(default=10**9, description="Largest element count one array may hold.")


class ServiceConfig(BaseModel):
    """How the long-running daemon paces itself and shuts down."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shutdown_grace: PositiveSeconds = Field(
        default=10.0, description="Time allowed on SIGTERM to finish the artifact in hand before exiting."
    )
    status_interval: Seconds = Field(
        default=300.0, description="Period of the status line logged while idle; 0 disables it."
    )
    queue_size: Annotated[int, _integer(1)] = Field(
        default=1024, description="Bound of the queue between watcher and worker (>= 1)."
    )
    retry_backoff: Annotated[
        tuple[Annotated[float, _AS_DURATION], Annotated[float, _AS_DURATION]], BeforeValidator(_backoff)
    ] = Field(
        default=(1.0, 60.0),
        description="First and longest wait between retries of a failing output.",
    )


class HttpConfig(BaseModel):
    """The optional HTTP endpoint: health checks for supervisors and metrics for Prometheus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, BeforeValidator(_flag)] = Field(
        default=False, description="Serve /healthz, /readyz, /idle and /metrics over HTTP."
    )
    host: Annotated[str, BeforeValidator(_host)] = Field(
        default="127.0.0.1",
        description="Address to listen on: 127.0.0.1 keeps the endpoint on this machine; 0.0.0.0 (or :: for "
        "IPv6) lets probes and scrapers reach it from outside, as in a container.",
    )
    port: Annotated[int, _integer(0, 65535)] = Field(
        default=9464, description="TCP port to listen on (0 picks a free one, reported in the log)."
    )
    stale_after: PositiveSeconds = Field(
        default=60.0,
        description="/healthz fails once the daemon loop has made no progress for this long. Keep it above "
        "the time one epoch takes to process.",
    )


class Config(BaseModel):
    """The whole configuration, one section per part of the daemon."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    watch: WatchConfig = Field(description="The dump root and how it is watched.")
    tensorboard: TensorBoardConfig = Field(description="Where summaries are written.")
    # Frozen models are immutable, so one default instance can be shared by every Config.
    compose: ComposeConfig = Field(default=ComposeConfig(), description="How images are composed.")
    metrics: MetricsConfig = Field(default=MetricsConfig(), description="Metrics per epoch.")
    viewer: ViewerConfig = Field(default=ViewerConfig(), description="Data for the viewer plugin.")
    limits: LimitsConfig = Field(default=LimitsConfig(), description="Input size caps.")
    service: ServiceConfig = Field(default=ServiceConfig(), description="Daemon pacing and shutdown.")
    http: HttpConfig = Field(default=HttpConfig(), description="Health and metrics endpoint.")

    @property
    def required_roles(self) -> tuple[str, ...]:
        """The roles every artifact needs: gt and pred, and image when a panel shows it (image, overlay).

        gt stays here even with `watch.fixed_gt`: the layout then supplies it from the plan's fixed files
        instead of waiting for it under the pattern.
        """
        roles = ("gt", "pred")
        return (*roles, "image") if set(IMAGE_PANELS) & set(self.compose.panels) else roles

    def dump_layout(self) -> DumpLayout:
        """The patterns of `watch` as one layout (raises ValueError naming the key if they cannot work)."""
        watch = self.watch
        return DumpLayout(
            watch.pattern,
            roles=watch.roles,
            trigger=watch.trigger,
            step_from=watch.step_from,
            required_roles=tuple(r for r in self.required_roles if r != "gt" or watch.fixed_gt is None),
        )

    @model_validator(mode="after")
    def _composite_fits(self) -> Config:
        """The worst epoch must fit: every item shown, each panel at full size, held at once while encoding."""
        compose, limit = self.compose, self.limits.max_pixels
        height, width = compose.size
        pixels = height * width * len(compose.panels) * compose.max_items
        if pixels > limit:
            raise ValueError(
                f"compose.size: {height} x {width} pixels x {len(compose.panels)} panels x {compose.max_items} "
                f"items (compose.max_items) makes composites of {pixels:,} pixels, above "
                f"limits.max_pixels ({limit:,}); lower compose.size or compose.max_items, or raise "
                "limits.max_pixels"
            )
        return self

    @model_validator(mode="after")
    def _pred_kind_fits(self) -> Config:
        compose = self.compose
        if compose.pred_kind == "probability" and compose.num_classes != 2:
            raise ValueError(
                "compose.pred_kind: probability maps are thresholded into classes 0 and 1, which needs "
                f"num_classes 2, got num_classes {compose.num_classes}; use scores or labels"
            )
        return self

    @model_validator(mode="after")
    def _layout_can_match(self) -> Config:
        if self.watch.fixed_gt is not None and "gt" in self.watch.roles:
            raise ValueError("watch.fixed_gt and watch.roles.gt both set the ground truth: keep one")
        self.dump_layout()
        if "{run}" in self.tensorboard.logdir and "{run}" not in self.watch.pattern:
            raise ValueError(
                "tensorboard.logdir contains {run} but watch.pattern does not: every epoch would be the "
                f"unnamed run; put {{run}} in watch.pattern or remove it from the logdir, got "
                f"{_shown(self.tensorboard.logdir)}"
            )
        return self


# --- loading ------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys, which plain loading silently resolves to the last, and
    documents whose aliases expand beyond MAX_YAML_VALUES values (a "billion laughs" alias bomb: tiny on
    disk, gigabytes once anything walks it)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {_shown(key)}",
                    key_node.start_mark,
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node) -> None:
    """Count the values `root` expands to, each alias counted in full, without expanding anything."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not children_done:
            if key in on_path:
                raise yaml.constructor.ConstructorError(
                    None, None, "found a recursive alias", node.start_mark
                )
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        total = 1 + sum(sizes.get(id(child), 0) for child in children)
        if total > MAX_YAML_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases expand to more than {MAX_YAML_VALUES:,} values (an alias bomb?); "
                "write the values out or use fewer aliases",
                node.start_mark,
            )
        sizes[key] = total


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment (`os.environ` when `env` is None), validate.

    Relative paths in the file are relative to the file's directory. Raises ConfigError naming the file.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {file} is not UTF-8 text: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from None
    if data is None:
        # An empty file is a config whose every value comes from defaults and the environment.
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file {file}: expected a mapping of sections (watch, tensorboard, ...) at the top level, "
            f"got {type(data).__name__}"
        )
    # The directory exists (the file was just read), so resolving it is exact; the file itself is not
    # resolved, so a config symlinked into place keeps paths relative to where the link is.
    return _build(data, env, base_dir=file.absolute().parent.resolve(), origin=str(file))


def config_from_mapping(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate an already-parsed config, with environment overrides (`os.environ` when `env` is None).

    Relative paths are resolved against `base_dir`, or the current directory when it is None.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of sections at the top level, got {type(data).__name__}")
    return _build(data, env, base_dir=base_dir, origin=None)


def _build(
    data: Mapping[Any, Any], env: Mapping[str, str] | None, base_dir: Path | None, origin: str | None
) -> Config:
    # A section whose keys are all commented out parses as null; it means "all defaults", not "not a mapping".
    merged = {
        key: {} if value is None and key in Config.model_fields else value for key, value in data.items()
    }
    problems, sources = _apply_env(merged, os.environ if env is None else env)
    base = (Path.cwd() if base_dir is None else Path(base_dir)).absolute()
    config = None
    try:
        config = Config.model_validate(merged, context={"base_dir": base})
    except ValidationError as exc:
        problems.extend(_describe(error, sources) for error in exc.errors(include_url=False))
    if problems or config is None:
        where = f" in {origin}" if origin else ""
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ConfigError(f"invalid configuration{where} ({count}):\n" + "\n".join(problems))
    return config


def _apply_env(data: dict[Any, Any], env: Mapping[str, str]) -> tuple[list[str], dict[tuple[str, str], str]]:
    """Merge `SEGWATCH_<SECTION>__<KEY>` overrides into `data`; return the problems and who set what."""
    problems: list[str] = []
    sources: dict[tuple[str, str], str] = {}
    sections = _section_models()
    for name in sorted(env):
        rest = name[len(ENV_PREFIX) :]
        # Variables without the double underscore (SEGWATCH_CONFIG, ...) belong to other parts of segwatch.
        if not name.startswith(ENV_PREFIX) or "__" not in rest:
            continue
        section, _, key = rest.lower().partition("__")
        if section not in sections:
            problems.append(
                f"{name}: unknown section {_shown(section)}, expected one of {', '.join(sections)}"
            )
            continue
        if key not in sections[section].model_fields:
            problems.append(f"{name}: unknown key {section}.{key}{_suggestion(key, sections[section])}")
            continue
        try:
            value = yaml.load(env[name], Loader=_StrictLoader)
            parsed = not isinstance(value, Mapping)
        except yaml.YAMLError:
            parsed = False
        if not parsed:
            problems.append(f"{name}: expected a YAML scalar or a [list], got {_shown(env[name])}")
            continue
        current = data.get(section)
        if current is None:
            current = {}
        # A section that is not a mapping in the file cannot take a key; validation reports the file's error.
        if isinstance(current, Mapping):
            data[section] = {**current, key: value}
            sources[(section, key)] = name
    return problems, sources


def _section_models() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def _describe(error: ErrorDetails, sources: Mapping[tuple[str, str], str]) -> str:
    """One line `<key path>: <what was expected>, got <what came>` for one validation error."""
    loc = error["loc"]
    kind = error["type"]
    if kind == "missing":
        text = "required"
    elif kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        text = "unknown key" + (_suggestion(str(loc[-1]), parent) if parent else "")
    elif kind == "value_error":
        # The exception itself carries our message; error["msg"] would add pydantic's "Value error, ".
        text = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        text = f"expected a mapping, got {_shown(error['input'])}"
    else:
        msg = error["msg"]
        text = f"{msg[:1].lower()}{msg[1:]}, got {_shown(error['input'])}"
    source = sources.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
    # Checks across sections name their keys themselves.
    where = f"{_key_path(loc)}: " if loc else ""
    return f"{where}{text}" + (f" (from {source})" if source else "")


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(top level)"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _suggestion(key: str, model: type[BaseModel]) -> str:
    close = difflib.get_close_matches(key, list(model.model_fields), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# --- rendering ----------------------------------------------------------------------------------------


class _FlowListDumper(yaml.SafeDumper):
    """Writes lists inline (`size: [256, 256]`) and mappings as blocks, the way people write this config."""


def _flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_FlowListDumper.add_representer(list, _flow_list)


def render_config(cfg: Config) -> str:
    """The effective config as YAML with readable durations and sizes; loading it gives an equal Config."""
    return yaml.dump(cfg.model_dump(mode="json"), Dumper=_FlowListDumper, sort_keys=False, allow_unicode=True)
