"""The config sections of what is read: where the dumps are and how they are noticed (`watch`), and the caps on
what one dump file may cost (`limits`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from segwatch.config.kinds import (
    Bytes,
    Count,
    PositiveSeconds,
    Seconds,
    base_dir,
    keyless_pattern,
    one_of,
    path_text,
    resolve_under,
    retention_count,
    shown,
)
from segwatch.intake.observers import ObserverChoice
from segwatch.intake.patterns import DEFAULT_PATTERN, StepFrom, check_pattern
from segwatch.output.storage import is_url


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
    step_from: Annotated[StepFrom, one_of(StepFrom)] = Field(
        default="epoch",
        description="Which number of the path orders epochs and is the TensorBoard step: epoch ({epoch}) or "
        "step ({step}); every per-epoch pattern must contain it.",
    )
    observer: Annotated[ObserverChoice, one_of(ObserverChoice)] = Field(
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
    retention: Annotated[int | None, BeforeValidator(retention_count)] = Field(
        default=None,
        description="Remove dump files once they are logged, so the dump volume never fills: null keeps "
        "everything, N keeps the files of each run's last N logged epochs, 0 removes an epoch's files as soon "
        "as it is committed. Only the gt/pred/image files segwatch read for a logged epoch are removed: never "
        "a set-aside epoch, a trigger, the fixed ground truth or a file changed since.",
    )

    @field_validator("root", mode="before")
    @classmethod
    def _root_under_base(cls, value: object, info: ValidationInfo) -> Path:
        text = path_text(value, "a local directory path")
        if is_url(text):
            raise ValueError(f"expected a local directory path, got {shown(value)}")
        return resolve_under(base_dir(info), text)

    @field_validator("pattern", mode="before")
    @classmethod
    def _valid_pattern(cls, value: object) -> str:
        return keyless_pattern(value, shorthand=True)

    @field_validator("roles", mode="before")
    @classmethod
    def _valid_roles(cls, value: object) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping of roles (gt, pred, image) to patterns, got {shown(value)}")
        for role, text in value.items():
            if role not in ("gt", "pred", "image"):
                raise ValueError(f"expected roles among gt, pred, image, got {shown(role)}")
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
        return keyless_pattern(value, trigger=True).strip()

    @field_validator("fixed_gt", mode="before")
    @classmethod
    def _fixed_gt_under_root(cls, value: object, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        text = path_text(value, "null or a path to a .npy file")
        root = info.data.get("root")
        return resolve_under(root if isinstance(root, Path) else base_dir(info), text)


class LimitsConfig(BaseModel):
    """Caps that keep one bad or huge dump from exhausting the machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_bytes: Bytes = Field(
        default=4 * 2**30, description="Largest .npy file that is read; bigger files are set aside."
    )
    max_pixels: Count = Field(default=10**9, description="Largest element count one array may hold.")
