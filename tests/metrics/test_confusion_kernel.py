"""The run-length confusion kernel against a straightforward reference: every pixel counted one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segwatch.metrics.confusion import ClassIdError, count_confusion, new_confusion

INTEGER_DTYPES = [
    np.dtype(t)
    for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)
]


def reference(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore: int | None) -> np.ndarray:
    """Pair by pair, in Python integers: ignore_index in the last row (gt) and column (pred), and any other
    id refused wherever it is (a stray prediction under an ignored pixel too)."""
    gt_values, gt_index = np.unique(gt.reshape(-1), return_inverse=True)
    pred_values, pred_index = np.unique(pred.reshape(-1), return_inverse=True)
    pair_counts = np.bincount(
        gt_index * pred_values.size + pred_index, minlength=gt_values.size * pred_values.size
    )
    out = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for pair, n in enumerate(pair_counts.tolist()):
        if n == 0:
            continue
        g = int(gt_values[pair // pred_values.size])  # bools as ids 0 and 1, not as masks
        p = int(pred_values[pair % pred_values.size])
        if not (0 <= p < num_classes or p == ignore):
            raise ClassIdError("pred", p, num_classes, ignore)
        # An ignore_index that is also a class id is ignored in the ground truth, a class in the prediction.
        if ignore is not None and g == ignore:
            row = num_classes
        elif 0 <= g < num_classes:
            row = g
        else:
            raise ClassIdError("gt", g, num_classes, ignore)
        out[row, p if 0 <= p < num_classes else num_classes] += n
    return out


def strays(labels: np.ndarray, num_classes: int, ignore: int | None) -> set[int]:
    values = set(np.unique(labels).tolist())
    return {v for v in values if not 0 <= v < num_classes and v != ignore}


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int | None]:
    """Label pairs built from runs: long runs (smooth maps), runs of one (noise), or a mix, in any dtype, with
    ignore_index anywhere, ids at the dtype's limits, and sometimes more pixels than one kernel step holds."""
    gt_dtype, pred_dtype = draw(st.sampled_from(INTEGER_DTYPES)), draw(st.sampled_from(INTEGER_DTYPES))

    def limits(dtype: np.dtype) -> tuple[int, int]:
        return (0, 1) if dtype == np.bool_ else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))

    low = max(limits(gt_dtype)[0], limits(pred_dtype)[0])
    top = min(limits(gt_dtype)[1], limits(pred_dtype)[1])
    num_classes = draw(st.sampled_from([1, 2, 3, 19, 150, 300]))
    num_classes = max(1, min(num_classes, top))
    # 70000: wide labels whose accepted ids do not fit 16 bits, counted without narrowing.
    ignore = draw(st.sampled_from([None, 255, -1, num_classes, top, 70000]))
    if ignore is not None and not low <= ignore <= top:
        ignore = None

    def label(dtype: np.dtype) -> st.SearchStrategy[int]:
        if dtype == np.bool_:
            return st.integers(0, 1)
        least, most = limits(dtype)
        # Ids that wrap onto an accepted one when cut to 8 or 16 bits: wide labels are narrowed per chunk.
        aliases = [256, 256 + num_classes - 1, 65536, 65536 + num_classes - 1, -256, -65536, 2**32]
        edges = st.sampled_from([least, most, 0, num_classes - 1, num_classes, *aliases])
        inside = st.integers(0, num_classes - 1)
        choices = [inside, inside, inside, edges] + ([st.just(ignore)] if ignore is not None else [])
        return st.one_of(choices).filter(lambda v: least <= v <= most)

    runs = draw(st.integers(1, 40))
    long_runs = draw(st.sampled_from([1, 3, 500, 12000]))
    lengths = draw(st.lists(st.integers(1, long_runs), min_size=runs, max_size=runs))
    gt_values = draw(st.lists(label(gt_dtype), min_size=runs, max_size=runs))
    pred_values = draw(st.lists(label(pred_dtype), min_size=runs, max_size=runs))
    gt = np.repeat(np.array(gt_values, dtype=object).astype(gt_dtype), lengths)
    pred = np.repeat(np.array(pred_values, dtype=object).astype(pred_dtype), lengths)
    if draw(st.booleans()):  # noise on top: every pixel a run of its own
        flip = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(gt.size) < 0.5
        pred = np.where(flip, pred[::-1], pred).astype(pred_dtype)
    return gt, pred, num_classes, ignore


@settings(max_examples=300, deadline=None)
@given(cases())
def test_identical_to_the_reference(case: tuple[np.ndarray, np.ndarray, int, int | None]) -> None:
    gt, pred, num_classes, ignore = case
    try:
        expected = reference(gt, pred, num_classes, ignore)
    except ClassIdError as error:
        with pytest.raises(ClassIdError) as raised:
            count_confusion(gt, pred, num_classes, ignore, out=new_confusion(num_classes))
        found = (
            strays(gt, num_classes, ignore)
            if raised.value.role == "gt"
            else strays(pred, num_classes, ignore)
        )
        assert raised.value.value in found, (raised.value, error)
        return
    out = new_confusion(num_classes)
    count_confusion(gt, pred, num_classes, ignore, out=out)
    np.testing.assert_array_equal(out, expected)


def test_counts_accumulate_across_calls_and_chunks() -> None:
    """Two halves counted into one matrix equal the whole; a noisy, a smooth and an empty chunk mixed."""
    rng = np.random.default_rng(3)
    smooth = np.repeat(rng.integers(0, 19, 400), 1000).astype(np.uint8)
    smooth[rng.random(smooth.size) < 0.05] = 255
    pred = np.where(rng.random(smooth.size) < 0.3, rng.integers(0, 19, smooth.size), smooth % 19).astype(
        np.int64
    )
    whole = count_confusion(smooth, pred, 19, 255, out=new_confusion(19))
    parts = new_confusion(19)
    for cut in (slice(0, 123_457), slice(123_457, 123_457), slice(123_457, None)):
        count_confusion(smooth[cut], pred[cut], 19, 255, out=parts)
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(whole, reference(smooth, pred, 19, 255))


def test_ignore_everywhere_counts_nothing() -> None:
    gt = np.full((600, 700), 255, dtype=np.uint8)
    pred = np.random.default_rng(1).integers(0, 21, gt.shape).astype(np.int32)
    out = count_confusion(gt, pred, 21, 255, out=new_confusion(21))
    assert not out[:21].any()
    assert out[21].sum() == gt.size


def test_non_contiguous_views_are_counted_without_a_copy_of_the_whole() -> None:
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 5, (3, 40, 50)).astype(np.uint16)
    pred = rng.integers(0, 5, (3, 50, 40)).astype(np.int64).transpose(0, 2, 1)
    out = count_confusion(gt[:, ::2], pred[:, ::2], 5, None, out=new_confusion(5))
    np.testing.assert_array_equal(out, reference(gt[:, ::2].copy(), pred[:, ::2].copy(), 5, None))


def test_a_stray_id_names_its_role_and_value() -> None:
    gt = np.zeros(300_000, dtype=np.uint8)
    pred = np.zeros(300_000, dtype=np.int64)
    pred[250_001] = 2**40
    with pytest.raises(
        ClassIdError, match=r"class id 1099511627776 outside \[0, 3\) and not ignore_index 255"
    ):
        count_confusion(gt, pred, 3, 255, out=new_confusion(3))
    gt[7] = 200
    with pytest.raises(ClassIdError) as raised:
        count_confusion(gt, pred, 3, 255, out=new_confusion(3))
    assert (raised.value.role, raised.value.value) == ("gt", 200)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int64, np.uint64])
@pytest.mark.parametrize("num_classes", [19, 300])  # narrowed to 8 bits, to 16 bits
def test_wide_ids_that_wrap_onto_a_class_are_refused(dtype: type, num_classes: int) -> None:
    """An id that equals a class in its low 8 or 16 bits is still a stray id, in a long run, in a noisy
    chunk and in the smooth chunk after a noisy one (which is not narrowed)."""
    rng = np.random.default_rng(4)
    step = 1 << 17  # the kernel's chunk
    smooth = np.repeat(rng.integers(0, num_classes, 3 * step // 1000 + 1), 1000)[: 3 * step]
    noise = rng.integers(0, num_classes, 3 * step)
    mixed = np.concatenate([noise[:step], smooth[step : 2 * step], noise[2 * step :]])
    info = np.iinfo(dtype)
    for labels in (smooth, noise, mixed):
        gt = labels.astype(np.uint8 if num_classes < 256 else np.uint16)
        for where in (5, step + 77, 3 * step - 1):
            for wrapped in (256 + 3, 65536 + 3, -256 + 3, -65536 + 3, 2**32 + 3):
                if not info.min <= wrapped <= info.max or 0 <= wrapped < num_classes:
                    continue  # not representable, or a class
                pred = labels.astype(dtype)
                pred[where] = wrapped
                with pytest.raises(ClassIdError) as raised:
                    count_confusion(gt, pred, num_classes, 255, out=new_confusion(num_classes))
                assert (raised.value.role, raised.value.value) == ("pred", wrapped)
        pred = labels.astype(dtype)
        out = count_confusion(gt, pred, num_classes, 255, out=new_confusion(num_classes))
        np.testing.assert_array_equal(out, reference(gt, pred, num_classes, 255))


def test_wide_labels_with_ids_past_16_bits_are_counted_exactly() -> None:
    """Accepted ids that fit neither 8 nor 16 bits (ignore_index 70000, or a negative one): no narrowing."""
    rng = np.random.default_rng(5)
    gt = np.repeat(rng.integers(0, 21, 600), 500).astype(np.int64)
    pred = np.where(rng.random(gt.size) < 0.01, rng.integers(0, 21, gt.size), gt).astype(np.int32)
    for ignore in (70000, -1):
        labels = np.where(rng.random(gt.size) < 0.05, ignore, gt)
        out = count_confusion(labels, pred, 21, ignore, out=new_confusion(21))
        np.testing.assert_array_equal(out, reference(labels, pred, 21, ignore))


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.int32, np.int64, np.uint64])
def test_a_prediction_of_an_ignore_index_that_is_a_class_counts_as_that_class(dtype: type) -> None:
    """With 300 classes, ignore_index 255 is ignored in the ground truth but class 255 in the prediction:
    in a smooth map and in noise, whatever other ids share the chunk."""
    rng = np.random.default_rng(6)
    for pred_values in (np.repeat(rng.integers(250, 300, 300), 1000), rng.integers(250, 300, 300_000)):
        gt = np.repeat(rng.integers(250, 260, 3000), 100).astype(np.uint16)
        pred = pred_values.astype(dtype)
        out = count_confusion(gt, pred, 300, 255, out=new_confusion(300))
        np.testing.assert_array_equal(out, reference(gt, pred, 300, 255))
        assert out[:, 255].sum() == (pred == 255).sum()
