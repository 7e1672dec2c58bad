"""What decides an artifact's outcome besides its files: the render-relevant part of the config, as a digest.

An epoch set aside is not retried while its files and this digest stay the same; fixing the config (say
`compose.num_classes` or `class_axis`) changes the digest, so the epoch is tried again. Which settings count is
the plan's to say (segwatch.plan); this module only makes the digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping


def config_fingerprint(relevant: Mapping[str, object]) -> str:
    """A digest of the settings that can turn the same files into a different outcome or picture, given as
    JSON-able values by name."""
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def set_aside_fingerprint(files: str, config: str) -> str:
    """The fingerprint a set-aside epoch is recorded with: its files' and the config's."""
    return f"{files}+{config}"
