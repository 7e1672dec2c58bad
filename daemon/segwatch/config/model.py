"""The whole configuration: one section per part of the daemon, and the checks that span sections."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from segwatch.config.drawing import ComposeConfig, MetricsConfig, ViewerConfig
from segwatch.config.inputs import LimitsConfig, WatchConfig
from segwatch.config.kinds import shown
from segwatch.config.running import HttpConfig, ServiceConfig, TensorBoardConfig
from segwatch.intake.layout import DumpLayout
from segwatch.render.compose import IMAGE_PANELS

__all__ = ["Config"]


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
                f"{shown(self.tensorboard.logdir)}"
            )
        return self
