"""The count pass copies out a nearest-neighbour sample of the maps it counts: the same pixels a resize reads,
from files and from memory, with the same counts as a pass without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segwatch.intake.npy import open_array
from segwatch.intake.reads import ReadSession
from segwatch.metrics.confusion import ClassIdError, RowSample, count_confusion, new_confusion
from segwatch.render.compose import nearest_taps, resize_labels_nearest

CAPS = {"max_file_bytes": 1 << 30, "max_pixels": 1 << 30}


def sample_for(shape: tuple[int, int], size: tuple[int, int]) -> RowSample:
    rows = nearest_taps(shape[0], size[0])
    return RowSample(
        rows=np.arange(*rows.indices(shape[0])) if isinstance(rows, slice) else rows,
        cols=nearest_taps(shape[1], size[1]),
        gt=np.empty(size, dtype=np.uint8),
        pred=np.empty(size, dtype=np.uint8),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 300),
    width=st.sampled_from([1, 7, 640, 1500, 4096, 140_000]),
    shrink=st.integers(1, 5),
    dtype=st.sampled_from([np.uint8, np.int16, np.int64]),
    on_disk=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_the_sample_is_what_a_nearest_resize_reads_and_the_counts_do_not_change(
    tmp_path: Path, height: int, width: int, shrink: int, dtype: type, on_disk: bool, seed: int
) -> None:
    if height * width > 2_000_000:
        width = max(1, 2_000_000 // height)
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 5, (height, width)).astype(dtype)
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = np.repeat(rng.integers(0, 5, (height, 1)), width, axis=1).astype(dtype)
    size = (max(1, height // shrink), max(1, width // shrink))
    with ReadSession() as reads:
        if on_disk:
            np.save(tmp_path / "gt.npy", gt)
            np.save(tmp_path / "pred.npy", pred)
            stored_gt = open_array(tmp_path / "gt.npy", reads, **CAPS)
            stored_pred = open_array(tmp_path / "pred.npy", reads, **CAPS)
        else:
            stored_gt, stored_pred = gt, pred
        sample = sample_for((height, width), size)
        counted = count_confusion(stored_gt, stored_pred, 5, 255, out=new_confusion(5), sample=sample)
        plain = count_confusion(stored_gt, stored_pred, 5, 255, out=new_confusion(5))
    np.testing.assert_array_equal(counted, plain)
    np.testing.assert_array_equal(sample.gt, resize_labels_nearest(gt, size).astype(np.uint8))
    np.testing.assert_array_equal(sample.pred, resize_labels_nearest(pred, size).astype(np.uint8))


def test_a_stray_id_still_refuses_the_item_with_a_sample() -> None:
    gt = np.zeros((4, 4), dtype=np.int64)
    pred = gt.copy()
    pred[3, 3] = 256 + 1  # would wrap to class 1 in a byte
    with pytest.raises(ClassIdError, match="class id 257"):
        count_confusion(gt, pred, 5, 255, out=new_confusion(5), sample=sample_for((4, 4), (2, 2)))


def test_a_sample_needs_a_two_dimensional_map() -> None:
    volume = np.zeros((2, 3, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(H, W\) maps"):
        count_confusion(volume, volume, 5, 255, out=new_confusion(5), sample=sample_for((3, 4), (3, 4)))


def test_several_samples_are_filled_in_one_pass() -> None:
    """The viewer's layers and the picture's panels, at two sizes, from the same count."""
    rng = np.random.default_rng(9)
    gt = rng.integers(0, 5, (333, 517)).astype(np.int64)
    pred = np.repeat(rng.integers(0, 5, (333, 1)), 517, axis=1).astype(np.int32)
    small, large = sample_for(gt.shape, (64, 99)), sample_for(gt.shape, (333, 517))
    counted = count_confusion(gt, pred, 5, 255, out=new_confusion(5), sample=(small, large))
    np.testing.assert_array_equal(counted, count_confusion(gt, pred, 5, 255, out=new_confusion(5)))
    for sample, size in ((small, (64, 99)), (large, (333, 517))):
        np.testing.assert_array_equal(sample.gt, resize_labels_nearest(gt, size).astype(np.uint8))
        np.testing.assert_array_equal(sample.pred, resize_labels_nearest(pred, size).astype(np.uint8))
