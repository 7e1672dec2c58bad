"""The error hierarchy, and what became of one artifact: what went wrong decides what the daemon does next.

`Outcome` and `Result` are the processor's answer for one artifact; health, the reporter and `once` speak it
too, so it lives down here with the errors it is made from rather than in the processor.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SegwatchError(Exception):
    """Base of every error segwatch raises on purpose."""


class ConfigError(SegwatchError):
    """The configuration is unusable: report it and exit with status 2."""


class ArtifactError(SegwatchError):
    """One artifact is bad: log one line naming the file and the reason, set it aside, go on."""


class NotReadyError(ArtifactError):
    """A file is still being written (shorter than its header promises): wait, do not set aside."""


class SinkError(SegwatchError):
    """The output is broken (logdir unwritable, disk full): keep the artifact pending, retry, then stop."""


class RetryableError(NotReadyError):
    """A file cannot be read now for a reason that can heal (permissions, descriptors, transient I/O): the
    artifact waits and is retried with backoff, reported once; it is never set aside for this."""


class Outcome(enum.Enum):
    LOGGED = "logged"
    SET_ASIDE = "set aside"
    DONE = "already done"
    LATE = "skipped (late)"
    NOT_READY = "not ready"
    # A file cannot be read for now (permissions, descriptors, transient I/O): retried with backoff.
    WAITING = "waiting"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str = ""
    # DONE, but the files changed after the epoch was logged (reported once; TensorBoard keeps the first).
    redumped: bool = False
