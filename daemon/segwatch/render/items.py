"""What the renderer draws and counts: one sample's label maps (and image), as `normalise` makes them from the
arrays a training job dumps, and the words that say how to read those arrays. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from segwatch.intake.filearrays import Stored


__all__ = ["ClassAxis", "Item", "PredKind"]

# Where the class axis of per-class scores sits: before the spatial axes or after them.
ClassAxis = Literal["first", "last"]
# What pred holds: auto decides by rule (see normalise.py); the others say it outright.
PredKind = Literal["auto", "labels", "scores", "probability"]


# eq=False: a generated __eq__ would compare arrays element-wise and fail on truth-testing the result.
@dataclass(frozen=True, eq=False)
class Item:
    """One sample, ready for colouring: label maps of equal (H, W) and an optional RGB image."""

    gt: Stored
    pred: Stored
    image: Stored | None
    # role → the file it came from (and which item of a batch), so that later errors can name the file.
    files: Mapping[str, str] = field(default_factory=dict)
    # A 3-D volume's whole (D, H, W) gt and pred, which metrics count, when gt and pred are a montage of slices.
    volume: tuple[np.ndarray, np.ndarray] | None = None
