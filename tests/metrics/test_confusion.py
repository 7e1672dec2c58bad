import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segwatch.metrics.confusion import confusion_matrix, scores


def reference(gt, pred, num_classes, ignore_index):
    """The textbook definitions, class by class, with no shared code."""
    valid = gt != ignore_index if ignore_index is not None else np.ones(gt.shape, bool)
    ious, accs = [], []
    for c in range(num_classes):
        inter = np.sum((gt == c) & (pred == c) & valid)
        union = np.sum(((gt == c) | (pred == c)) & valid)
        label = np.sum((gt == c) & valid)
        ious.append(inter / union if union else math.nan)
        accs.append(inter / label if label else math.nan)
    correct = np.sum((gt == pred) & valid)
    total = np.sum(valid)
    return ious, accs, (correct / total if total else math.nan)


def close(actual, expected):
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None
    return actual is not None and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


@st.composite
def label_pairs(draw):
    num_classes = draw(st.integers(1, 6))
    ignore = draw(st.sampled_from([None, 255]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, max_side=12))
    values = st.integers(0, num_classes - 1) | (st.just(255) if ignore is not None else st.nothing())
    gt = draw(hnp.arrays(np.uint8, shape, elements=values))
    pred = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, num_classes - 1)))
    return gt, pred, num_classes, ignore


@settings(max_examples=200, deadline=None)
@given(label_pairs())
def test_matches_the_reference(case):
    gt, pred, num_classes, ignore = case
    result = scores(confusion_matrix(gt, pred, num_classes, ignore))
    ious, accs, pixel_acc = reference(gt, pred, num_classes, ignore)
    assert all(close(a, e) for a, e in zip(result.iou, ious, strict=True))
    assert all(close(a, e) for a, e in zip(result.class_accuracy, accs, strict=True))
    assert close(result.pixel_accuracy, pixel_acc)
    present = [v for v in ious if not math.isnan(v)]
    assert close(result.mean_iou, sum(present) / len(present) if present else None)
    # Nothing undefined ever comes out as NaN.
    for value in (*result.iou, *result.dice, *result.class_accuracy, result.mean_iou, result.pixel_accuracy):
        assert value is None or not math.isnan(value)


def test_known_values():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 3, 3]])
    result = scores(confusion_matrix(gt, pred, 4, 255))
    assert result.iou == (1 / 3, 2 / 3, 1 / 2, None)  # class 3 appears only under ignore pixels
    assert result.mean_iou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert result.pixel_accuracy == pytest.approx(4 / 6)
    assert result.pixels == 6


def test_binary_dice_is_f1_of_the_foreground():
    gt = np.array([0, 1, 1, 1, 0, 0])
    pred = np.array([1, 1, 1, 0, 0, 0])
    result = scores(confusion_matrix(gt, pred, 2))
    assert result.binary_dice == pytest.approx(2 * 2 / (3 + 3))


def test_out_of_range_ids_are_refused():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 3)


def test_large_batches_are_counted_in_chunks():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 19, size=(3, 1024, 2048), dtype=np.uint8)
    pred = rng.integers(0, 19, size=(3, 1024, 2048)).astype(np.int64)
    counts = confusion_matrix(gt, pred, 19)
    assert counts.sum() == gt.size
    assert counts[4, 7] == np.sum((gt == 4) & (pred == 7))
