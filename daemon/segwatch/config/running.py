"""The config sections of where summaries go (`tensorboard`) and of the daemon itself: pacing and shutdown
(`service`) and its health and metrics endpoint (`http`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from segwatch.config.kinds import (
    AS_DURATION,
    PositiveSeconds,
    Seconds,
    backoff,
    base_dir,
    check_logdir_run,
    flag,
    host_name,
    integer,
    path_text,
    resolve_under,
    shown,
)
from segwatch.output.storage import is_url


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
        text = path_text(value, "a directory path or a URL such as gs://bucket/path")
        check_logdir_run(text)
        return text if is_url(text) else str(resolve_under(base_dir(info), text))

    @field_validator("tag_prefix", mode="before")
    @classmethod
    def _valid_tag_prefix(cls, value: object) -> str:
        if not isinstance(value, str) or not value.strip() or value.startswith("/") or value.endswith("/"):
            raise ValueError(
                f"expected a non-empty tag prefix without a leading or trailing '/', got {shown(value)}"
            )
        return value


class ServiceConfig(BaseModel):
    """How the long-running daemon paces itself and shuts down."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shutdown_grace: PositiveSeconds = Field(
        default=10.0, description="Time allowed on SIGTERM to finish the artifact in hand before exiting."
    )
    status_interval: Seconds = Field(
        default=300.0, description="Period of the status line logged while idle; 0 disables it."
    )
    queue_size: Annotated[int, integer(1)] = Field(
        default=1024, description="Bound of the queue between watcher and worker (>= 1)."
    )
    retry_backoff: Annotated[
        tuple[Annotated[float, AS_DURATION], Annotated[float, AS_DURATION]], BeforeValidator(backoff)
    ] = Field(
        default=(1.0, 60.0),
        description="First and longest wait between retries of a failing output.",
    )


class HttpConfig(BaseModel):
    """The optional HTTP endpoint: health checks for supervisors and metrics for Prometheus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, BeforeValidator(flag)] = Field(
        default=False, description="Serve /healthz, /readyz, /idle and /metrics over HTTP."
    )
    host: Annotated[str, BeforeValidator(host_name)] = Field(
        default="127.0.0.1",
        description="Address to listen on: 127.0.0.1 keeps the endpoint on this machine; 0.0.0.0 (or :: for "
        "IPv6) lets probes and scrapers reach it from outside, as in a container.",
    )
    port: Annotated[int, integer(0, 65535)] = Field(
        default=9464, description="TCP port to listen on (0 picks a free one, reported in the log)."
    )
    stale_after: PositiveSeconds = Field(
        default=60.0,
        description="/healthz fails once the daemon loop has made no progress for this long. Keep it above "
        "the time one epoch takes to process.",
    )
