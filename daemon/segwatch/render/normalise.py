"""Arrays as a training job dumps them → one (gt, pred, image) label-map Item per sample. Pure: numpy in,
numpy out.

gt and integer preds stay views of their arrays, which may still be on disk (`FileArray`): the composer
samples pixels from them and checks class ids there, so nothing here reads a label map in full. Scores are
argmax-ed (argmax.py), which does read them in full, in blocks small enough to stay in cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import FileArray, Stored
from segwatch.render.argmax import argmax_over_classes
from segwatch.render.items import ClassAxis, Item, PredKind

__all__ = ["normalise"]


def normalise(
    gt: Stored,
    pred: Stored,
    image: Stored | None,
    *,
    class_axis: ClassAxis = "first",
    threshold: float = 0.5,
    names: Mapping[str, str] | None = None,
    pred_kind: PredKind = "auto",
    num_classes: int = 2,
) -> list[Item]:
    """Split (H, W) or (N, H, W) arrays into items, turning scores into label maps and images into RGB uint8.

    `names` maps a role ("gt", "pred", "image") to its file, so that errors name the file at fault. What pred
    holds follows `pred_kind`; with auto: integers are class ids; floats with gt's shape are class ids when
    every value is a whole number, a probability map when `num_classes` is 2 and they lie in [0, 1], else an
    error; floats with a class axis are per-class scores (argmax), a single channel a probability map (two
    classes only).
    """
    if class_axis not in ("first", "last"):
        raise ValueError(f"class_axis must be 'first' or 'last', got {class_axis!r}")
    names = names or {}
    for role, array in (("gt", gt), ("pred", pred), ("image", image)):
        if array is not None:
            _check_dims_and_size(role, array, names)
    if gt.ndim not in (2, 3):
        raise _bad("gt", names, f"gt must be (H, W) or (N, H, W), got shape {gt.shape}")
    if gt.dtype.kind not in "biu":
        raise _bad("gt", names, f"gt must hold integer class ids, got {gt.dtype}")

    gt_items = _split(_bool_as_uint8(gt), gt)
    if pred_kind not in ("auto", "labels", "scores", "probability"):
        raise ValueError(f"pred_kind must be auto, labels, scores or probability, got {pred_kind!r}")
    pred_items = _pred_label_maps(
        gt,
        pred,
        class_axis=class_axis,
        threshold=threshold,
        names=names,
        pred_kind=pred_kind,
        num_classes=num_classes,
    )
    image_items: list[Stored | None] = (
        [None] * len(gt_items) if image is None else list(_images(gt, image, names))
    )
    return [
        Item(gt=g, pred=p, image=i, files=_item_files(names, index, batched=gt.ndim == 3))
        for index, (g, p, i) in enumerate(zip(gt_items, pred_items, image_items, strict=True))
    ]


def _item_files(names: Mapping[str, str], index: int, *, batched: bool) -> dict[str, str]:
    return {role: f"{name} item {index}" if batched else name for role, name in names.items()}


# --- predictions -------------------------------------------------------------------------------------------


def _pred_label_maps(
    gt: Stored,
    pred: Stored,
    *,
    class_axis: ClassAxis,
    threshold: float,
    names: Mapping[str, str],
    pred_kind: PredKind = "auto",
    num_classes: int = 2,
) -> list[Stored]:
    """pred as (H, W) label maps, by rule: what the array is follows from its dtype, shape and values (or from
    `pred_kind`), never from a guess that could be silently wrong."""
    if pred.dtype.kind not in "biuf":
        raise _bad("pred", names, f"pred must hold integer class ids or float scores, got {pred.dtype}")
    context = _PredContext(gt, pred, names, class_axis, num_classes)
    if pred.shape == gt.shape:
        if pred_kind == "scores":
            raise context.error(
                "pred_kind: scores needs a class axis, but pred has gt's shape",
                "save the scores with their class axis, or set compose.pred_kind: auto",
            )
        if pred.dtype.kind != "f":
            if pred_kind == "probability":
                raise context.error(
                    "pred_kind: probability needs float values in [0, 1], but pred holds integers",
                    "set compose.pred_kind: labels (or auto) for integer class ids",
                )
            return _split(_bool_as_uint8(pred), gt)
        # Read once (it may still be on disk): the kind is decided on a sample of it, each item converted from it.
        values = np.asarray(pred)
        context = _PredContext(gt, values, names, class_axis, num_classes)
        kind = pred_kind if pred_kind != "auto" else _float_kind(context)
        items = [values[index] for index in range(values.shape[0])] if gt.ndim == 3 else [values]
        if kind == "labels":
            return [_integral_labels(item, context) for item in items]
        return [_probability_labels(item, threshold, context) for item in items]

    # Where the class axis sits in pred, counted in gt's axes: before (H, W) or after them.
    class_axis_index = gt.ndim - 2 if class_axis == "first" else gt.ndim
    if pred.ndim == gt.ndim + 1:
        spatial = pred.shape[:class_axis_index] + pred.shape[class_axis_index + 1 :]
        if spatial == gt.shape and pred.dtype.kind != "f":
            raise _mismatch(
                "gt",
                gt,
                "pred",
                pred,
                names,
                expected=f"integer pred must have gt's shape, got {pred.dtype} "
                "(only float scores carry a class axis)",
            )
        if spatial == gt.shape:
            channels = pred.shape[class_axis_index]
            if pred_kind == "labels":
                raise context.error(
                    "pred_kind: labels needs pred with gt's shape, but pred has a class axis",
                    "save class ids with gt's shape, or set compose.pred_kind: scores",
                )
            if channels == 1:
                if pred_kind == "scores":
                    raise context.error(
                        "pred_kind: scores needs one channel per class, but pred has a single channel",
                        "save one score channel per class",
                    )
                return [_single_channel(item, class_axis, threshold, context) for item in _split(pred, gt)]
            if pred_kind == "probability":
                raise context.error(
                    f"pred_kind: probability needs one channel, but pred has {channels} on its class axis",
                    "set compose.pred_kind: scores (or auto) for per-class scores",
                )
            nan_message = _prefix("pred", names) + f"pred scores contain NaN (shape {pred.shape})"
            return [_scores_to_labels(item, class_axis, nan_message) for item in _split(pred, gt)]

    expected: list[int | str] = list(gt.shape)
    expected.insert(class_axis_index, "C")
    raise _mismatch(
        "gt",
        gt,
        "pred",
        pred,
        names,
        expected=f"expected pred {gt.shape}, or scores ({', '.join(map(str, expected))}) "
        f"with class_axis={class_axis!r}" + _fitting_class_axis(gt, pred, class_axis),
    )


def _fitting_class_axis(gt: Stored, pred: Stored, class_axis: ClassAxis) -> str:
    """A hint when pred's shape would fit the other class axis."""
    if pred.ndim != gt.ndim + 1:
        return ""
    other: ClassAxis = "last" if class_axis == "first" else "first"
    index = gt.ndim - 2 if other == "first" else gt.ndim
    if pred.shape[:index] + pred.shape[index + 1 :] == gt.shape:
        return f"; this shape fits compose.class_axis: {other}"
    return ""


@dataclass(frozen=True, eq=False)
class _PredContext:
    """What a message about pred must name: the file, shape, dtype, value range and num_classes."""

    gt: Stored
    pred: Stored
    names: Mapping[str, str]
    class_axis: ClassAxis
    num_classes: int

    def error(self, problem: str, fix: str) -> ArtifactError:
        low, high = _value_range(self.pred)
        return _bad(
            "pred",
            self.names,
            f"{problem}: pred shape {self.pred.shape}, dtype {self.pred.dtype}, values {low:g} to {high:g}, "
            f"gt shape {self.gt.shape}, num_classes {self.num_classes}; {fix}",
        )


def _value_range(array: Stored) -> tuple[float, float]:
    """min and max ignoring NaN (NaN if every value is NaN), for messages."""
    values = np.asarray(array)
    finite_or_inf = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if finite_or_inf.size == 0:
        return float("nan"), float("nan")
    return float(finite_or_inf.min()), float(finite_or_inf.max())


# How many evenly spaced values of a float pred decide, cheaply, whether it holds labels or probabilities.
_KIND_SAMPLE = 4096


def _float_kind(context: _PredContext) -> PredKind:
    """`auto` for a float pred with gt's shape: labels if its values are whole numbers, a probability map if
    num_classes is 2 and they lie in [0, 1], else an error. Decided on a strided sample (a memory map is not
    read in full); the full read that follows confirms it exactly."""
    flat = np.asarray(context.pred).reshape(-1)
    sample = flat[:: max(1, flat.size // _KIND_SAMPLE)]
    if np.isnan(sample).any():
        raise ArtifactError(
            _prefix("pred", context.names) + f"pred probabilities contain NaN (shape {context.pred.shape})"
        )
    if np.array_equal(sample, np.round(sample)):
        return "labels"
    if context.num_classes == 2 and sample.min() >= 0.0 and sample.max() <= 1.0:
        return "probability"
    raise context.error(
        "float pred with gt's shape holds neither class ids (whole numbers) nor probabilities "
        "(values in [0, 1] with num_classes 2)",
        "save class ids (pred.argmax(axis=1)) or per-class scores with a class axis, or set "
        "compose.pred_kind",
    )


def _integral_labels(values: np.ndarray, context: _PredContext) -> np.ndarray:
    """Float class ids as integers, every value checked: the one full read of pred confirms the sample."""
    if np.isnan(values).any():
        raise context.error(
            "pred holds float class ids but contains NaN", "save class ids as integers (pred.astype(int))"
        )
    low, high = float(values.min()), float(values.max())
    if low < -(2**31) or high >= 2**31:
        raise context.error("float class ids outside the int32 range", "save class ids as integers")
    labels = values.astype(np.int32)
    if not np.array_equal(labels, values):
        fractional = np.asarray(values)[labels != values]
        raise context.error(
            f"pred holds float class ids but {fractional.size} values are not whole numbers "
            f"(e.g. {float(fractional[0]):g})",
            "save class ids as integers, or set compose.pred_kind: probability for a probability map",
        )
    return labels


def _probability_labels(values: np.ndarray, threshold: float, context: _PredContext) -> np.ndarray:
    if np.isnan(values).any():
        raise ArtifactError(
            _prefix("pred", context.names) + f"pred probabilities contain NaN (shape {context.pred.shape})"
        )
    if context.num_classes != 2:
        raise context.error(
            "a probability map is thresholded into classes 0 and 1, which needs num_classes 2",
            "save per-class scores with a class axis, or class ids",
        )
    if float(values.min()) < 0.0 or float(values.max()) > 1.0:
        raise context.error(
            "probabilities must lie in [0, 1]", "apply a sigmoid first, or save class ids (pred > 0)"
        )
    return (values >= threshold).view(np.uint8)


def _single_channel(
    scores: Stored, class_axis: ClassAxis, threshold: float, context: _PredContext
) -> np.ndarray:
    """One item's (1, H, W) or (H, W, 1) map: a probability map for two classes, never a silent threshold."""
    values = np.asarray(scores)
    plane = values[0] if class_axis == "first" else values[..., 0]
    if context.num_classes != 2:
        raise context.error(
            "a single-channel pred is a probability map, which needs num_classes 2 (an argmax over one "
            "channel is always class 0)",
            "save one score channel per class, or class ids with gt's shape (squeeze the channel axis)",
        )
    return _probability_labels(plane, threshold, context)


def _scores_to_labels(scores: Stored, class_axis: ClassAxis, nan_message: str) -> np.ndarray:
    """One item's (C, H, W) or (H, W, C) scores, C > 1 → (H, W) labels."""
    by_class = scores if class_axis == "first" else scores.transpose((2, 0, 1))
    return argmax_over_classes(by_class, nan_message=nan_message)


# --- images ------------------------------------------------------------------------------------------------


def _images(gt: Stored, image: Stored, names: Mapping[str, str]) -> list[Stored]:
    accepted = (gt.shape, (*gt.shape, 1), (*gt.shape, 3))
    if image.shape not in accepted:
        raise _mismatch(
            "gt",
            gt,
            "image",
            image,
            names,
            expected=f"expected image {accepted[0]}, {accepted[1]} or {accepted[2]}",
        )
    if image.dtype.kind not in "biuf":
        raise _bad("image", names, f"image must be uint8, integer or float in [0, 1], got {image.dtype}")
    if image.dtype.kind == "f":
        image = np.asarray(image)  # converted in full anyway: read once
    if image.dtype.kind == "f" and np.isnan(image).any():
        raise _bad("image", names, f"image contains NaN (shape {image.shape})")
    return [_to_rgb8(item) for item in _split(image, gt)]


def _to_rgb8(image: Stored) -> Stored:
    """(H, W), (H, W, 1) or (H, W, 3) of any accepted dtype → (H, W, 3) uint8, clipping, never wrapping."""
    if isinstance(image, FileArray):
        if image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
            return image  # the composer reads only the rows it samples
        image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., np.newaxis]
    rgb = _to_uint8(image)
    return rgb if rgb.shape[-1] == 3 else np.repeat(rgb, 3, axis=-1)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "b":
        return image.view(np.uint8) * np.uint8(255)
    if image.dtype.kind == "f":
        scaled = np.clip(image.astype(np.float64 if image.dtype.itemsize > 4 else np.float32), 0.0, 1.0)
        scaled *= 255
        return np.rint(scaled, out=scaled).astype(np.uint8)
    # Bounds inside the dtype's own range: numpy refuses a Python int the dtype cannot hold (255 for int8).
    limits = np.iinfo(image.dtype)
    return np.clip(image, max(0, limits.min), min(255, limits.max)).astype(np.uint8)


# --- shapes, views and messages -----------------------------------------------------------------------------


def _split(array: Stored, gt: Stored) -> list[Stored]:
    """Per-item views: a batch when gt is (N, H, W), else the array is the only item."""
    if gt.ndim == 3:
        return [array[index] for index in range(array.shape[0])]
    return [array]


def _bool_as_uint8(labels: Stored) -> Stored:
    # Same itemsize, so this is a view, not a copy: bool masks become class ids 0 and 1.
    return labels.view(np.uint8) if labels.dtype.kind == "b" else labels


def _check_dims_and_size(role: str, array: Stored, names: Mapping[str, str]) -> None:
    if not 2 <= array.ndim <= 4:
        raise _bad(role, names, f"{role} must have 2 to 4 dimensions, got shape {array.shape}")
    if array.size == 0:
        raise _bad(role, names, f"{role} is empty, got shape {array.shape}")


def _prefix(role: str, names: Mapping[str, str]) -> str:
    return f"{names[role]}: " if role in names else ""


def _bad(role: str, names: Mapping[str, str], reason: str) -> ArtifactError:
    return ArtifactError(_prefix(role, names) + reason)


def _described(role: str, array: Stored, names: Mapping[str, str]) -> str:
    return f"{role} {names[role]} {array.shape}" if role in names else f"{role} {array.shape}"


def _mismatch(
    role_a: str, a: Stored, role_b: str, b: Stored, names: Mapping[str, str], expected: str = ""
) -> ArtifactError:
    message = f"shape mismatch: {_described(role_a, a, names)} vs {_described(role_b, b, names)}"
    return ArtifactError(f"{message}; {expected}" if expected else message)
