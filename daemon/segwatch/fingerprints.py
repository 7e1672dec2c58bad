"""What decides an artifact's outcome besides its files: the render-relevant part of the config, as a digest.

An epoch set aside is not retried while its files and this digest stay the same; fixing the config (say
`compose.num_classes` or `class_axis`) changes the digest, so the epoch is tried again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from segwatch.config.model import Config


def config_fingerprint(config: Config, fixed_files: Mapping[str, str]) -> str:
    """A digest of every setting that can turn the same files into a different outcome or picture: how they
    are read (limits, `fixed_files`: the plan's role → path), normalised and drawn (compose), measured
    (metrics) and tagged."""
    relevant = {
        "compose": config.compose.model_dump(mode="json"),
        "metrics": config.metrics.model_dump(mode="json"),
        "limits": config.limits.model_dump(mode="json"),
        "tag_prefix": config.tensorboard.tag_prefix,
        "fixed_files": dict(fixed_files),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def set_aside_fingerprint(files: str, config: str) -> str:
    """The fingerprint a set-aside epoch is recorded with: its files' and the config's."""
    return f"{files}+{config}"
