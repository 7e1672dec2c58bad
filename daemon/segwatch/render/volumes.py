"""3-D label volumes (medical segmentation) → one item per volume, shown as a montage of evenly spaced slices.

With `compose.volume_slices: N`, gt (D, H, W) is one volume and (N, D, H, W) a batch of volumes. Each volume
becomes one item whose gt, pred and image are montages of N slices spread evenly from first to last, tiled
in a near-square grid, so every composer and panel works unchanged; metrics still count every voxel of the
volume (the item's `volume`). Pure: numpy in, numpy out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import Stored
from segwatch.render.items import ClassAxis, Item, PredKind
from segwatch.render.normalise import normalise

__all__ = ["montage", "slice_indices", "volume_items"]


def slice_indices(depth: int, slices: int) -> list[int]:
    """`slices` indices spread evenly over [0, depth), first and last included; fewer when depth is smaller."""
    if depth < 1 or slices < 1:
        raise ValueError(f"expected depth and slices >= 1, got depth {depth} and slices {slices}")
    if slices >= depth:
        return list(range(depth))
    if slices == 1:
        return [depth // 2]
    return [round(i * (depth - 1) / (slices - 1)) for i in range(slices)]


def montage_columns(count: int) -> int:
    """The divisor of `count` nearest above its square root: a full grid, never an empty cell to fill."""
    return next(c for c in range(math.isqrt(count - 1) + 1 if count > 1 else 1, count + 1) if count % c == 0)


def montage(stored: Sequence[Stored]) -> np.ndarray:
    """Equal-shaped (H, W[, 3]) slices tiled row by row into one (rows·H, columns·W[, 3]) array."""
    slices = [np.asarray(plane) for plane in stored]
    columns = montage_columns(len(slices))
    rows = [
        np.concatenate(slices[start : start + columns], axis=1) for start in range(0, len(slices), columns)
    ]
    return np.concatenate(rows, axis=0)


def volume_items(
    gt: Stored,
    pred: Stored,
    image: Stored | None,
    *,
    slices: int,
    limit: int | None = None,
    class_axis: ClassAxis = "first",
    threshold: float = 0.5,
    names: Mapping[str, str] | None = None,
    pred_kind: PredKind = "auto",
    num_classes: int = 2,
) -> list[Item]:
    """One montage item per volume of (D, H, W) or (N, D, H, W) arrays, at most `limit` of them.

    pred is labels of gt's shape or scores with a class axis, per volume (C, D, H, W) or (D, H, W, C);
    image is gt's shape, optionally with a last axis of 1 or 3 channels.
    """
    names = names or {}
    if gt.ndim not in (3, 4):
        where = f"{names['gt']}: " if "gt" in names else ""
        raise ArtifactError(
            f"{where}with compose.volume_slices, gt must be a volume (D, H, W) or a batch of volumes "
            f"(N, D, H, W), got shape {gt.shape}"
        )
    batched = gt.ndim == 4
    count = gt.shape[0] if batched else 1
    if batched and (
        pred.shape[:1] != gt.shape[:1] or (image is not None and image.shape[:1] != gt.shape[:1])
    ):
        shapes = " vs ".join(
            f"{role} {a.shape}" for role, a in (("gt", gt), ("pred", pred), ("image", image)) if a is not None
        )
        raise ArtifactError(f"shape mismatch: {shapes}; expected the same number of volumes in each")
    items = []
    for index in range(count if limit is None else min(count, limit)):
        volume_names = {role: f"{name} volume {index}" if batched else name for role, name in names.items()}
        items.append(
            _volume_item(
                gt[index] if batched else gt,
                pred[index] if batched else pred,
                None if image is None else image[index] if batched else image,
                slices=slices,
                class_axis=class_axis,
                threshold=threshold,
                names=volume_names,
                pred_kind=pred_kind,
                num_classes=num_classes,
            )
        )
    return items


def _volume_item(
    gt: Stored,
    pred: Stored,
    image: Stored | None,
    *,
    slices: int,
    class_axis: ClassAxis,
    threshold: float,
    names: Mapping[str, str],
    pred_kind: PredKind,
    num_classes: int,
) -> Item:
    if class_axis == "first" and pred.ndim == gt.ndim + 1 and pred.shape[1:] == gt.shape:
        # Slices are the batch axis for normalise, which wants each slice's class axis first: (D, C, H, W).
        pred = pred.transpose((1, 0, *range(2, pred.ndim)))
    # The volume's slices, as normalise's batch: it argmaxes scores and checks shapes, naming the file.
    planes = normalise(
        gt,
        pred,
        image,
        class_axis=class_axis,
        threshold=threshold,
        names=names,
        pred_kind=pred_kind,
        num_classes=num_classes,
    )
    shown = [planes[i] for i in slice_indices(len(planes), slices)]
    return Item(
        gt=montage([plane.gt for plane in shown]),
        pred=montage([plane.pred for plane in shown]),
        image=None if image is None else montage([plane.image for plane in shown if plane.image is not None]),
        files=dict(names),
        volume=(
            np.stack([np.asarray(plane.gt) for plane in planes]),
            np.stack([np.asarray(plane.pred) for plane in planes]),
        ),
    )
