"""Arrays as a training job dumps them → one (gt, pred, image) label-map item per sample. Pure: numpy in,
numpy out.

gt and integer preds stay views of their (possibly memory-mapped) arrays: the composer samples pixels from
them and checks class ids there, so nothing here reads a label map in full. Scores are argmax-ed, which does
read them in full, in blocks small enough to stay in cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from segwatch.errors import ArtifactError

ClassAxis = Literal["first", "last"]

# Scores are processed in row blocks whose working copy stays this small, so the per-class passes hit cache.
_WORK_BUFFER_BYTES = 4 << 20

# float16 bit pattern of +inf with the sign cleared; any larger magnitude is a NaN.
_HALF_INF_BITS = 0x7C00


# eq=False: a generated __eq__ would compare arrays element-wise and fail on truth-testing the result.
@dataclass(frozen=True, eq=False)
class Item:
    """One sample, ready for colouring: label maps of equal (H, W) and an optional RGB image."""

    gt: np.ndarray
    pred: np.ndarray
    image: np.ndarray | None


def normalise(
    gt: np.ndarray,
    pred: np.ndarray,
    image: np.ndarray | None,
    *,
    class_axis: ClassAxis = "first",
    threshold: float = 0.5,
    names: Mapping[str, str] | None = None,
) -> list[Item]:
    """Split (H, W) or (N, H, W) arrays into items, turning scores into label maps and images into RGB uint8.

    `names` maps a role ("gt", "pred", "image") to its file, so that errors name the file at fault.
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
    pred_items = _pred_label_maps(gt, pred, class_axis=class_axis, threshold=threshold, names=names)
    image_items: list[np.ndarray | None] = (
        [None] * len(gt_items) if image is None else list(_images(gt, image, names))
    )
    return [Item(gt=g, pred=p, image=i) for g, p, i in zip(gt_items, pred_items, image_items, strict=True)]


# --- predictions -------------------------------------------------------------------------------------------


def _pred_label_maps(
    gt: np.ndarray, pred: np.ndarray, *, class_axis: ClassAxis, threshold: float, names: Mapping[str, str]
) -> list[np.ndarray]:
    if pred.dtype.kind not in "biuf":
        raise _bad("pred", names, f"pred must hold integer class ids or float scores, got {pred.dtype}")
    if pred.shape == gt.shape:
        if pred.dtype.kind != "f":
            return _split(_bool_as_uint8(pred), gt)
        nan_message = _prefix("pred", names) + f"pred probabilities contain NaN (shape {pred.shape})"
        return [_thresholded(item, threshold, nan_message) for item in _split(pred, gt)]

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
            nan_message = _prefix("pred", names) + f"pred scores contain NaN (shape {pred.shape})"
            return [_scores_to_labels(item, class_axis, threshold, nan_message) for item in _split(pred, gt)]

    expected: list[int | str] = list(gt.shape)
    expected.insert(class_axis_index, "C")
    raise _mismatch(
        "gt",
        gt,
        "pred",
        pred,
        names,
        expected=f"expected pred {gt.shape}, or scores ({', '.join(map(str, expected))}) "
        f"with class_axis={class_axis!r}",
    )


def _scores_to_labels(
    scores: np.ndarray, class_axis: ClassAxis, threshold: float, nan_message: str
) -> np.ndarray:
    """One item's (C, H, W) or (H, W, C) scores → (H, W) labels."""
    by_class = scores if class_axis == "first" else np.moveaxis(scores, -1, 0)
    if by_class.shape[0] == 1:
        return _thresholded(by_class[0], threshold, nan_message)
    return argmax_over_classes(by_class, nan_message=nan_message)


def _thresholded(probabilities: np.ndarray, threshold: float, nan_message: str) -> np.ndarray:
    if np.isnan(probabilities).any():
        raise ArtifactError(nan_message)
    return (probabilities >= threshold).view(np.uint8)


def argmax_over_classes(scores: np.ndarray, *, nan_message: str = "scores contain NaN") -> np.ndarray:
    """Labels of the highest score over axis 0 of (C, H, W) float scores; ties go to the lowest class id.

    Equals np.argmax(scores, axis=0) but is several times faster on big float16 batches: a running maximum
    over classes walks contiguous row blocks, and float16 is compared as integers (numpy emulates float16
    arithmetic, while int16 compares are vectorised). Labels come back in the smallest unsigned dtype that
    holds C - 1.
    """
    classes, height, width = scores.shape
    label_dtype = np.min_scalar_type(classes - 1)
    half = scores.dtype.itemsize == 2
    if half:
        source = scores.view(np.dtype(np.int16).newbyteorder(scores.dtype.byteorder))
        work_dtype = np.dtype(np.int16)
    else:
        source = scores
        work_dtype = scores.dtype.newbyteorder("=")

    rows = min(height, max(1, _WORK_BUFFER_BYTES // (classes * width * work_dtype.itemsize)))
    work = np.empty((classes, rows, width), dtype=work_dtype)
    sign = np.empty_like(work) if half else work
    beats = np.empty((rows, width), dtype=bool)
    candidate = np.empty((rows, width), dtype=label_dtype)
    labels = np.zeros((height, width), dtype=label_dtype)

    for top in range(0, height, rows):
        count = min(rows, height - top)
        block = work[:, :count]
        # One copy per block gathers a strided (class-last) layout and fixes byte order in a single pass.
        np.copyto(block, source[:, top : top + count])
        if half:
            _half_bits_to_ordered_keys(block, sign[:, :count], nan_message)
        best = block[0]
        out = labels[top : top + count]
        for class_id in range(1, classes):
            np.greater(block[class_id], best, out=beats[:count])
            # Class ids only grow during the walk, so max(label, beats * id) sets the label where it wins.
            np.multiply(beats[:count], label_dtype.type(class_id), out=candidate[:count])
            np.maximum(out, candidate[:count], out=out)
            np.maximum(best, block[class_id], out=best)
        # np.maximum propagates NaN, so any NaN among the classes leaves a NaN running maximum.
        if not half and np.isnan(best).any():
            raise ArtifactError(nan_message)
    return labels


def _half_bits_to_ordered_keys(bits: np.ndarray, sign: np.ndarray, nan_message: str) -> None:
    """Turn float16 bit patterns into int16 keys that order like the floats, in place.

    float16 is sign-magnitude; the key is +magnitude or -magnitude, so -0.0 and +0.0 tie as they do as floats.
    """
    np.right_shift(bits, 15, out=sign)  # 0 for positive, -1 for negative
    np.bitwise_and(bits, 0x7FFF, out=bits)
    if bits.max() > _HALF_INF_BITS:
        raise ArtifactError(nan_message)
    # (m ^ s) - s is m when s == 0 and -m when s == -1.
    np.bitwise_xor(bits, sign, out=bits)
    np.subtract(bits, sign, out=bits)


# --- images ------------------------------------------------------------------------------------------------


def _images(gt: np.ndarray, image: np.ndarray, names: Mapping[str, str]) -> list[np.ndarray]:
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
    if image.dtype.kind == "f" and np.isnan(image).any():
        raise _bad("image", names, f"image contains NaN (shape {image.shape})")
    return [_to_rgb8(item) for item in _split(image, gt)]


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) of any accepted dtype → (H, W, 3) uint8, clipping, never wrapping."""
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


def _split(array: np.ndarray, gt: np.ndarray) -> list[np.ndarray]:
    """Per-item views: a batch when gt is (N, H, W), else the array is the only item."""
    if gt.ndim == 3:
        return [array[index] for index in range(array.shape[0])]
    return [array]


def _bool_as_uint8(labels: np.ndarray) -> np.ndarray:
    # Same itemsize, so this is a view, not a copy: bool masks become class ids 0 and 1.
    return labels.view(np.uint8) if labels.dtype.kind == "b" else labels


def _check_dims_and_size(role: str, array: np.ndarray, names: Mapping[str, str]) -> None:
    if not 2 <= array.ndim <= 4:
        raise _bad(role, names, f"{role} must have 2 to 4 dimensions, got shape {array.shape}")
    if array.size == 0:
        raise _bad(role, names, f"{role} is empty, got shape {array.shape}")


def _prefix(role: str, names: Mapping[str, str]) -> str:
    return f"{names[role]}: " if role in names else ""


def _bad(role: str, names: Mapping[str, str], reason: str) -> ArtifactError:
    return ArtifactError(_prefix(role, names) + reason)


def _described(role: str, array: np.ndarray, names: Mapping[str, str]) -> str:
    return f"{role} {names[role]} {array.shape}" if role in names else f"{role} {array.shape}"


def _mismatch(
    role_a: str, a: np.ndarray, role_b: str, b: np.ndarray, names: Mapping[str, str], expected: str = ""
) -> ArtifactError:
    message = f"shape mismatch: {_described(role_a, a, names)} vs {_described(role_b, b, names)}"
    return ArtifactError(f"{message}; {expected}" if expected else message)
