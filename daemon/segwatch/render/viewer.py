"""An epoch's items → the viewer's summaries: exact class ids, the image, per-item metrics. Pure numpy.

Labels are stored as ids, not colours, so the browser can toggle classes, read the class under the cursor
and compute error and change maps itself. Ids go in an 8-bit greyscale PNG while every code fits in a byte
(up to 256 with the ignore code), else in a 24-bit RGB PNG (r << 16 | g << 8 | b). Maps are resized with
nearest sampling only: interpolation would invent class ids. The image is sampled at the same pixels, so each
stored pixel of every layer comes from one original pixel, the one the hover readout names (and sampling is
some 50 times faster than a bilinear resize of a large image).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tensorboard.compat.proto import summary_pb2

from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import FileArray
from segwatch.metrics.confusion import RowSample, scores
from segwatch.render.compose import nearest_taps, resize_labels_nearest
from segwatch.render.evaluation import MAX_METRIC_CLASSES, epoch_confusion, item_confusion
from segwatch.render.items import Item
from segwatch.render.png import encode_grey_png, encode_png
from segwatch.summaries import Summary
from segwatch.viewer import metadata

__all__ = [
    "Stored",
    "ViewerPlan",
    "count_pass_sample",
    "label_codes",
    "stored_size",
    "viewer_items",
    "viewer_summaries",
]

GREY8 = "gray8"
RGB24 = "rgb24"


@dataclass(frozen=True, eq=False)
class ViewerPlan:
    """The plain values the viewer data needs, fixed for a configuration."""

    prefix: str
    max_side: int
    items: int | tuple[int, ...]
    num_classes: int
    ignore_index: int | None
    class_names: tuple[str, ...]
    palette: np.ndarray  # (num_classes, 3) uint8
    ignore_colour: tuple[int, int, int]

    @property
    def encoding(self) -> str:
        return GREY8 if self.num_classes + (self._ignore_needs_code(256)) <= 256 else RGB24

    @property
    def ignore_code(self) -> int | None:
        """The stored value of ignored pixels: ignore_index itself when it fits the encoding, else the first
        code past the classes."""
        if self.ignore_index is None:
            return None
        limit = 256 if self.encoding == GREY8 else 1 << 24
        return self.ignore_index if 0 <= self.ignore_index < limit else self.num_classes

    def _ignore_needs_code(self, limit: int) -> int:
        if self.ignore_index is None or 0 <= self.ignore_index < limit:
            return 0
        return 1

    def classes_content(self) -> dict[str, Any]:
        """What the epoch tag's metadata says once for every step: names, colours, how ids are stored."""
        names = [
            self.class_names[c] if c < len(self.class_names) else str(c) for c in range(self.num_classes)
        ]
        return {
            "kind": "epoch",
            "num_classes": self.num_classes,
            "class_names": names,
            "palette": [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in self.palette.tolist()],
            "ignore_index": self.ignore_index,
            "ignore_code": self.ignore_code,
            "ignore_colour": "#{:02x}{:02x}{:02x}".format(*self.ignore_colour),
            "encoding": self.encoding,
            "max_side": self.max_side,
        }


@dataclass(frozen=True)
class Stored:
    """A layer (gt or image) as last written for an item: its content digest and the step holding it."""

    digest: str
    step: int


# item id → {"gt": Stored, "image": Stored}
StoredLayers = dict[int, dict[str, Stored]]


def viewer_items(spec: int | tuple[int, ...], count: int) -> list[int]:
    """The item indices shown for an epoch of `count` items: the first `spec`, or the listed ones present."""
    if isinstance(spec, int):
        return list(range(min(spec, count)))
    return [index for index in spec if index < count]


def items_needed(spec: int | tuple[int, ...]) -> int:
    """How many leading items of an epoch must be read to have every shown one."""
    return spec if isinstance(spec, int) else max(spec) + 1


def stored_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) scaled so the long side is at most `max_side`, aspect kept, never enlarged."""
    longest = max(height, width)
    if longest <= max_side:
        return height, width
    return max(1, (height * max_side + longest // 2) // longest), max(
        1, (width * max_side + longest // 2) // longest
    )


def label_codes(labels: np.ndarray | FileArray, plan: ViewerPlan) -> np.ndarray:
    """Label ids as stored: uint8 for gray8, (H, W, 3) uint8 for rgb24; ignored pixels as the ignore code."""
    values = np.asarray(labels)
    code = plan.ignore_code
    if plan.ignore_index is not None and code is not None and code != plan.ignore_index:
        values = np.where(values == plan.ignore_index, code, values)
    if plan.encoding == GREY8:
        return values.astype(np.uint8)
    wide = values.astype(np.uint32)
    return np.stack([(wide >> 16) & 0xFF, (wide >> 8) & 0xFF, wide & 0xFF], axis=-1).astype(np.uint8)


def count_pass_sample(plan: ViewerPlan, item: Item) -> RowSample | None:
    """Where the metrics' count pass should copy this item's stored gt and pred layers to (the same pixels
    as resize_labels_nearest picks), so the viewer needs no read of its own. Only when the stored codes are
    the ids themselves in a byte (gray8, ignore_index none or below 256): the count refuses every other id, so
    the cast to uint8 is exact. None otherwise; the viewer then samples the maps itself."""
    ignore = plan.ignore_index
    if plan.encoding != GREY8 or (ignore is not None and not 0 <= ignore < 256):
        return None
    if item.volume is not None or item.gt.ndim != 2 or item.gt.shape != item.pred.shape:
        return None
    height, width = item.gt.shape
    size = stored_size(height, width, plan.max_side)
    rows = nearest_taps(height, size[0])
    return RowSample(
        rows=np.arange(*rows.indices(height)) if isinstance(rows, slice) else rows,
        cols=nearest_taps(width, size[1]),
        gt=np.empty(size, dtype=np.uint8),
        pred=np.empty(size, dtype=np.uint8),
    )


def _encode_codes(codes: np.ndarray) -> bytes:
    return encode_grey_png(codes) if codes.ndim == 2 else encode_png(codes)


def _digest(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    # SHA-256: OpenSSL runs it on the CPU's SHA instructions (current x86-64 and ARM), 2.6x faster than
    # BLAKE2b here on a 512x512 layer, and hashed every epoch for every shown item.
    digest = hashlib.sha256(str(data.shape).encode())
    digest.update(data.reshape(-1).view(np.uint8).data)  # the buffer itself, not a copy
    return digest.hexdigest()


def _item_metrics(confusion: np.ndarray | None) -> dict[str, Any]:
    """Per-class IoU and pixel counts of one item, listed only for classes in its gt or prediction."""
    if confusion is None:
        return {}
    num_classes = confusion.shape[0]
    result = scores(confusion)
    gt_pixels = confusion.sum(axis=1)
    pred_pixels = confusion[:, :num_classes].sum(axis=0)
    present = [c for c in range(num_classes) if gt_pixels[c] or pred_pixels[c]]
    return {
        "miou": result.mean_iou,
        "pixel_accuracy": result.pixel_accuracy,
        "classes": present,
        "iou": [result.iou[c] for c in present],
        "gt_pixels": [int(gt_pixels[c]) for c in present],
        "pred_pixels": [int(pred_pixels[c]) for c in present],
        "labelled": int(confusion.sum()),
    }


def _metadata(content: dict[str, Any], description: str) -> bytes:
    # TensorBoard's Rust data server keeps a custom plugin's data only with a data class; a blob sequence
    # is a rank-1 string tensor.
    meta = summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=metadata.encode_content(content)
        ),
        data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
    )
    return bytes(meta.SerializeToString())


def viewer_summaries(
    plan: ViewerPlan,
    items: Sequence[Item],
    confusions: Sequence[np.ndarray],
    *,
    step: int,
    stored: Mapping[int, Mapping[str, Stored]],
    sampled: Mapping[int, RowSample] | None = None,
) -> tuple[list[Summary], StoredLayers]:
    """The epoch's viewer summaries, and the gt and image layers each shown item has stored after it.

    `confusions` are the per-item confusion matrices when already computed (aligned with `items`), else
    empty. `stored` holds the layers of the last committed epoch: a gt or image equal to its stored one is
    not written again; the item's info points at the step that holds it. `sampled` holds, by item index, the
    layers the count pass has already copied out (count_pass_sample).
    """
    sampled = sampled or {}
    metrics = plan.num_classes <= MAX_METRIC_CLASSES
    shown = viewer_items(plan.items, len(items))
    item_summaries: list[Summary] = []
    table: list[dict[str, Any]] = []
    after: StoredLayers = {}
    for index in shown:
        item = items[index]
        confusion: np.ndarray | None = None
        if metrics:
            confusion = (
                confusions[index]
                if index < len(confusions)
                else item_confusion(item, plan.num_classes, plan.ignore_index)
            )
        summary, info, layers = _item_summary(
            plan, index, item, confusion, step, stored.get(index, {}), sampled.get(index)
        )
        item_summaries.append(summary)
        after[index] = layers
        # The epoch index holds every item's info too: one read gives the browser the table, the legend's
        # numbers and where each layer is stored.
        table.append(info)
    epoch: dict[str, Any] = {"step": step, "items": table}
    if metrics and confusions:
        epoch["iou"] = list(scores(epoch_confusion(confusions, plan.num_classes)).iou)
    epoch_summary = Summary(
        metadata.epoch_tag(plan.prefix),
        (json.dumps(epoch, separators=(",", ":")).encode(),),
        _epoch_metadata(plan),
    )
    return [epoch_summary, *item_summaries], after


# The metadata is fixed by the plan (and the item's index): serialised once, not every epoch.
@functools.lru_cache(maxsize=16)
def _epoch_metadata(plan: ViewerPlan) -> bytes:
    return _metadata(
        plan.classes_content(), "The segwatch viewer's index of this epoch: open the SEGWATCH_VIEWER tab."
    )


@functools.lru_cache(maxsize=1024)
def _item_metadata(index: int) -> bytes:
    return _metadata({"kind": "item", "item": index}, f"Item {index} for the segwatch viewer.")


def _item_summary(
    plan: ViewerPlan,
    index: int,
    item: Item,
    confusion: np.ndarray | None,
    step: int,
    previous: Mapping[str, Stored],
    sampled: RowSample | None = None,
) -> tuple[Summary, dict[str, Any], dict[str, Stored]]:
    height, width = item.gt.shape[:2]
    size = stored_size(height, width, plan.max_side)
    resized = size != (height, width)
    source = item.files.get("gt", f"item {index}")
    if sampled is not None:
        gt, pred = sampled.gt, sampled.pred  # the ids are the codes (count_pass_sample)
    else:
        try:
            gt = label_codes(resize_labels_nearest(item.gt, size) if resized else item.gt, plan)
            pred = label_codes(resize_labels_nearest(item.pred, size) if resized else item.pred, plan)
        except (ValueError, OverflowError) as exc:
            raise ArtifactError(f"{source}: cannot store labels for the viewer: {exc}") from exc
    blobs: list[bytes] = [b"", _encode_codes(pred), b"", b""]
    layers: dict[str, Stored] = {}
    info: dict[str, Any] = {
        "id": index,
        "size": [height, width],
        "stored": list(size),
        "has_image": item.image is not None,
        **_item_metrics(confusion),
    }
    candidates: list[tuple[str, int, np.ndarray]] = [("gt", metadata.GT, gt)]
    if item.image is not None:
        # resize_labels_nearest samples the first two axes of any array, here (H, W, 3).
        image = resize_labels_nearest(item.image, size) if resized else np.asarray(item.image)
        candidates.append(("image", metadata.IMAGE, image))
    for name, position, array in candidates:
        digest = _digest(array)
        earlier = previous.get(name)
        if earlier is not None and earlier.digest == digest and earlier.step < step:
            layers[name] = earlier
        else:
            blobs[position] = _encode_codes(array) if name == "gt" else encode_png(array)
            layers[name] = Stored(digest, step)
        info[f"{name}_step"] = layers[name].step
    blobs[metadata.INFO] = json.dumps(info, separators=(",", ":")).encode()
    summary = Summary(
        metadata.item_tag(plan.prefix, index),
        tuple(blobs),
        _item_metadata(index),
    )
    return summary, info, layers
