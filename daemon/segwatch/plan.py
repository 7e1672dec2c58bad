"""The config turned into what the daemon runs on: one frozen plan per config, built once, at the edge.

Everything below the edge takes the plan's plain values (a compiled layout, the caps, an EpochPlan), never
the Config: a config is validated once (config.py) and compiled once (here).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from segwatch.caps import Caps
from segwatch.config.kinds import resolve_under
from segwatch.fingerprints import config_fingerprint
from segwatch.intake.layout import DumpLayout
from segwatch.render.epochplan import EpochPlan
from segwatch.render.evaluation import MAX_METRIC_CLASSES
from segwatch.render.indexspace import IndexSpace
from segwatch.render.palettes import build_palette
from segwatch.render.viewer import ViewerPlan, items_needed

if TYPE_CHECKING:
    from segwatch.config.model import Config

__all__ = ["RunPlan", "build_plan", "epoch_plan", "fixed_files", "viewer_plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class RunPlan:
    """Where the dumps are and how they are matched, read and rendered, for one config."""

    root: Path
    layout: DumpLayout
    # The roles every artifact needs (gt stays one with watch.fixed_gt: `fixed_files` supplies it).
    required_roles: tuple[str, ...]
    # Roles shared by every epoch rather than dumped per epoch, role → path.
    fixed_files: Mapping[str, str]
    caps: Caps
    # The render-relevant config as a digest: recorded with each set-aside epoch, so a changed config
    # retries it.
    fingerprint: str
    epoch: EpochPlan
    viewer: ViewerPlan | None  # None: the viewer's data is not written

    @property
    def fixed_paths(self) -> frozenset[str]:
        """Paths read from outside the root when configured (a shared validation ground truth)."""
        return frozenset(self.fixed_files.values())


def build_plan(config: Config) -> RunPlan:
    """The plan of a validated config (raises ValueError only for a config the models did not check)."""
    layout = config.dump_layout()
    fixed = fixed_files(config, layout)
    epoch = epoch_plan(config)
    return RunPlan(
        root=config.watch.root,
        layout=layout,
        required_roles=config.required_roles,
        fixed_files=MappingProxyType(fixed),
        caps=Caps(config.limits.max_file_bytes, config.limits.max_pixels),
        fingerprint=config_fingerprint(_render_relevant(config, fixed)),
        epoch=epoch,
        viewer=viewer_plan(config, epoch.space),
    )


def _render_relevant(config: Config, fixed: Mapping[str, str]) -> dict[str, object]:
    """Every setting that can turn the same files into a different outcome or picture: how they are read
    (limits, fixed files), normalised and drawn (compose), measured (metrics) and tagged."""
    return {
        "compose": config.compose.model_dump(mode="json"),
        "metrics": config.metrics.model_dump(mode="json"),
        "limits": config.limits.model_dump(mode="json"),
        "tag_prefix": config.tensorboard.tag_prefix,
        "fixed_files": dict(fixed),
    }


def fixed_files(config: Config, layout: DumpLayout | None = None) -> dict[str, str]:
    """`watch.fixed_gt`, and every role of `watch.roles` given as a path without placeholders, role → path."""
    layout = layout or config.dump_layout()
    fixed = {role: str(resolve_under(config.watch.root, text)) for role, text in layout.fixed.items()}
    if config.watch.fixed_gt is not None:
        fixed["gt"] = str(config.watch.fixed_gt)
    return fixed


def epoch_plan(config: Config) -> EpochPlan:
    """What rendering an epoch needs from `compose`, `metrics`, `viewer` and the tag prefix."""
    compose = config.compose
    space = _index_space(config)
    metrics = config.metrics.enabled
    if metrics and compose.num_classes > MAX_METRIC_CLASSES:
        log.warning(
            "metrics are off: %d classes are more than the %d a confusion matrix is kept for",
            compose.num_classes,
            MAX_METRIC_CLASSES,
        )
        metrics = False
    return EpochPlan(
        space=space,
        class_names=tuple(compose.class_names),
        palette_name=compose.palette if isinstance(compose.palette, str) else "custom",
        class_axis=compose.class_axis,
        pred_kind=compose.pred_kind,
        threshold=compose.threshold,
        volume_slices=compose.volume_slices,
        layout=compose.layout,
        panels=tuple(compose.panels),
        panel_size=(compose.size[0], compose.size[1]),
        resize=compose.resize,
        columns=None if compose.columns == "auto" else compose.columns,
        max_width=compose.max_width,
        max_items=compose.max_items,
        select=compose.select,
        seed=compose.seed,
        overlay_alpha=compose.overlay_alpha,
        headers=compose.headers,
        legend=compose.legend,
        metrics=metrics,
        per_class=config.metrics.per_class,
        confusion_matrix=config.metrics.confusion_matrix,
        tag_prefix=config.tensorboard.tag_prefix,
        viewer_items=items_needed(config.viewer.items) if config.viewer.enabled else 0,
    )


def viewer_plan(config: Config, space: IndexSpace | None = None) -> ViewerPlan | None:
    """What the viewer's data needs, or None when `viewer.enabled` is off. `space`: the epoch plan's."""
    if not config.viewer.enabled:
        return None
    compose = config.compose
    space = space or _index_space(config)
    ignore = space.full_palette()[space.ignore_slot]
    return ViewerPlan(
        prefix=config.tensorboard.tag_prefix,
        max_side=config.viewer.max_side,
        items=config.viewer.items,
        num_classes=compose.num_classes,
        ignore_index=compose.ignore_index,
        class_names=tuple(compose.class_names),
        palette=space.palette,
        ignore_colour=(int(ignore[0]), int(ignore[1]), int(ignore[2])),
    )


def _index_space(config: Config) -> IndexSpace:
    compose = config.compose
    return IndexSpace(
        num_classes=compose.num_classes,
        ignore_index=compose.ignore_index,
        palette=build_palette(compose.palette, compose.num_classes),
    )
