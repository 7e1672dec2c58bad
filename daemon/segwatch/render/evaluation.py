"""An epoch's items → its metric summaries: scalars, a confusion-matrix image and a per-class IoU table. Pure.

Metrics are computed over every item of the epoch at full resolution, not only the items shown. Pixels whose
ground truth is ignore_index are left out; a prediction of ignore_index on a labelled pixel counts against
that pixel's class but predicts no class (as in mmsegmentation, where such predictions fall outside every
class bin). Undefined values are never written as scalars, so no NaN reaches TensorBoard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segwatch.errors import ArtifactError
from segwatch.metrics.confusion import (
    ClassIdError,
    RowSample,
    Scores,
    count_confusion,
    new_confusion,
    scores,
)
from segwatch.render.figures import HEATMAP_PALETTE, heatmap_indices, iou_table
from segwatch.render.items import Item
from segwatch.render.png import encode_png
from segwatch.summaries import Summary, image_summary, scalar_summary, text_summary

__all__ = [
    "MAX_METRIC_CLASSES",
    "class_label",
    "classes_present",
    "epoch_confusion",
    "item_confusion",
    "item_counts",
    "metric_summaries",
    "per_class_tag",
]

# The confusion matrix holds num_classes² counts: 4096 classes are 128 MiB of int64, the most worth holding.
MAX_METRIC_CLASSES = 4096

MIOU_NOTE = (
    "mIoU is the mean IoU over the classes present in the ground truth or the prediction (mmsegmentation's "
    "convention); ignore_index pixels are left out."
)


def per_class_tag(prefix: str, label: str) -> str:
    """`<prefix>_IoU/<class>`: a tag group of its own. TensorBoard's Time Series tab groups cards by the tag's
    first path segment and sorts them by tag; under `<prefix>/IoU/...` the per-class curves came before the
    images (uppercase sorts first) and, with many classes, filled the first page."""
    return f"{prefix}_IoU/{label}"


def class_label(class_id: int, class_names: Sequence[str]) -> str:
    """A class's name when names are configured, else its id; '/' would nest tags, so it becomes '_'."""
    name = class_names[class_id] if class_id < len(class_names) else str(class_id)
    return name.replace("/", "_")


def item_counts(
    item: Item,
    num_classes: int,
    ignore_index: int | None,
    sample: RowSample | Sequence[RowSample] | None = None,
) -> np.ndarray:
    """(num_classes + 1, num_classes + 1) counts of one item in one pass over its pixels: rows ground truth,
    columns prediction, each with a last bin for ignore_index. The metrics use the first num_classes rows; the
    last row (pixels the ground truth ignores) still tells which classes the prediction panel shows. Raises
    ArtifactError, naming the file, for an id that is neither a class nor ignore_index. `sample` (one or
    several, for an item without a volume) is filled on the way (metrics.confusion.RowSample)."""
    gt, pred = item.volume if item.volume is not None else (item.gt, item.pred)
    try:
        return count_confusion(
            gt, pred, num_classes, ignore_index, out=new_confusion(num_classes), sample=sample
        )
    except ClassIdError as exc:
        raise ArtifactError(f"{item.files.get(exc.role, exc.role)}: {exc}") from None


def item_confusion(item: Item, num_classes: int, ignore_index: int | None) -> np.ndarray:
    """(num_classes, num_classes + 1) counts of one item: rows ground truth, columns prediction, and a last
    column for labelled pixels predicted as ignore_index. Raises ArtifactError for an unknown class id."""
    return item_counts(item, num_classes, ignore_index)[:num_classes]


def classes_present(counts: np.ndarray) -> np.ndarray:
    """Bool per class: does it occur in the ground truth or the prediction of an item_counts matrix?"""
    num_classes = counts.shape[0] - 1
    return (counts[:num_classes].sum(axis=1) > 0) | (counts[:, :num_classes].sum(axis=0) > 0)


def epoch_confusion(confusions: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """The sum of per-item confusions: the epoch's (num_classes, num_classes + 1) counts."""
    total = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for counts in confusions:
        total += counts
    return total


def metric_summaries(
    prefix: str,
    confusion: np.ndarray,
    *,
    class_names: Sequence[str] = (),
    per_class: bool = True,
    confusion_image: bool = True,
) -> list[Summary]:
    """Scalars `<prefix>/mIoU`, `/pixel_accuracy`, `/mean_class_accuracy`, `/dice` (two classes only),
    `<prefix>_IoU/<class>` (a group of its own, see per_class_tag); the image `<prefix>/confusion_matrix`;
    the text `<prefix>/IoU_table`. None is skipped."""
    result = scores(confusion)
    num_classes = confusion.shape[0]
    out: list[Summary] = []
    headline: list[tuple[str, float | None, str]] = [
        ("mIoU", result.mean_iou, MIOU_NOTE),
        ("pixel_accuracy", result.pixel_accuracy, "Correct pixels / labelled pixels, over every item."),
        ("mean_class_accuracy", result.mean_class_accuracy, "Mean over classes present in the ground truth."),
    ]
    if num_classes == 2:
        headline.append(("dice", result.binary_dice, "Dice (F1) of class 1, the foreground."))
    for name, value, note in headline:
        if value is not None:
            out.append(scalar_summary(f"{prefix}/{name}", value, description=note))
    if per_class:
        for class_id, value in enumerate(result.iou):
            if value is not None:
                label = class_label(class_id, class_names)
                out.append(scalar_summary(per_class_tag(prefix, label), value))
        out.append(
            text_summary(
                f"{prefix}/IoU_table",
                iou_table(result, confusion, [class_label(c, class_names) for c in range(num_classes)]),
                description="Per-class IoU and accuracy over every item of the epoch; — where undefined. "
                + MIOU_NOTE,
            )
        )
    if confusion_image:
        out.append(_confusion_summary(prefix, confusion, class_names))
    return out


def _confusion_summary(prefix: str, confusion: np.ndarray, class_names: Sequence[str]) -> Summary:
    num_classes = confusion.shape[0]
    pixels = heatmap_indices(
        confusion[:, :num_classes], [class_label(c, class_names) for c in range(num_classes)]
    )
    height, width = pixels.shape[:2]
    return image_summary(
        f"{prefix}/confusion_matrix",
        [encode_png(pixels, HEATMAP_PALETTE)],
        width=width,
        height=height,
        description="Rows: ground truth, columns: prediction, each row normalised to sum to 1 (white 0, dark "
        "blue 1); a grey row is a class absent from the ground truth. Over every item of the epoch.",
    )


def item_miou(confusion: np.ndarray) -> float | None:
    """One item's mIoU, for choosing hard examples."""
    result: Scores = scores(confusion)
    return result.mean_iou
