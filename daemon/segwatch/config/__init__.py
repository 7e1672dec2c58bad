"""The YAML configuration: validated models (one module per group of sections), loading with environment
overrides, and rendering back to YAML. Validation happens here once, calling the pure modules' own checks; the
validated config is then compiled into a plan (`segwatch.plan`)."""

from __future__ import annotations

from segwatch.config.drawing import ComposeConfig, MetricsConfig, ViewerConfig
from segwatch.config.inputs import LimitsConfig, WatchConfig
from segwatch.config.kinds import resolve_under
from segwatch.config.loading import ENV_PREFIX, config_from_mapping, load_config
from segwatch.config.model import Config
from segwatch.config.running import HttpConfig, ServiceConfig, TensorBoardConfig
from segwatch.config.yamltext import MAX_YAML_VALUES, render_config
from segwatch.render.compose import IMAGE_PANELS

__all__ = [
    "ENV_PREFIX",
    "IMAGE_PANELS",
    "MAX_YAML_VALUES",
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
    "resolve_under",
]
