from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segwatch.errors import ArtifactError
from segwatch.render import argmax as argmax_module
from segwatch.render.argmax import argmax_over_classes
from segwatch.render.items import Item
from segwatch.render.normalise import normalise

NAMES = {"gt": "/d/e3/gt.npy", "pred": "/d/e3/pred.npy", "image": "/d/e3/image.npy"}


def labels(shape: tuple[int, ...], classes: int = 5, seed: int = 0, dtype: str = "uint8") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, size=shape).astype(dtype)


def scores(shape: tuple[int, ...], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --- gt and integer predictions --------------------------------------------------------------------------


def test_single_label_map_is_one_item_of_views() -> None:
    gt, pred = labels((6, 8), seed=1), labels((6, 8), seed=2)

    items = normalise(gt, pred, None)

    assert len(items) == 1
    assert items[0].gt is gt or np.shares_memory(items[0].gt, gt)
    assert np.shares_memory(items[0].pred, pred)
    np.testing.assert_array_equal(items[0].pred, pred)
    assert items[0].image is None


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "int64", ">i4", "<u2"])
def test_batch_gives_one_view_per_item(dtype: str) -> None:
    gt, pred = labels((3, 6, 8), seed=1, dtype=dtype), labels((3, 6, 8), seed=2, dtype=dtype)

    items = normalise(gt, pred, None)

    assert len(items) == 3
    for index, item in enumerate(items):
        assert item.gt.shape == item.pred.shape == (6, 8)
        assert np.shares_memory(item.gt, gt) and np.shares_memory(item.pred, pred)
        np.testing.assert_array_equal(item.gt, gt[index])
        np.testing.assert_array_equal(item.pred, pred[index])


def test_bool_label_maps_become_zero_one_views() -> None:
    gt = np.array([[True, False], [False, True]])
    pred = np.array([[[False, False], [True, True]]])[0]

    (item,) = normalise(gt, pred, None)

    assert item.gt.dtype == np.uint8 and item.pred.dtype == np.uint8
    assert item.gt.tolist() == [[1, 0], [0, 1]]
    assert item.pred.tolist() == [[0, 0], [1, 1]]
    assert np.shares_memory(item.gt, gt)


@pytest.mark.parametrize("dtype", ["float32", "float16", "complex64"])
def test_gt_must_hold_integer_class_ids(dtype: str) -> None:
    gt = np.zeros((4, 4), dtype=dtype)

    with pytest.raises(ArtifactError) as excinfo:
        normalise(gt, labels((4, 4)), None, names=NAMES)

    assert str(excinfo.value) == f"/d/e3/gt.npy: gt must hold integer class ids, got {dtype}"


def test_messages_without_names_still_say_what_came() -> None:
    with pytest.raises(ArtifactError) as excinfo:
        normalise(np.zeros((4, 4), dtype=np.float32), labels((4, 4)), None)

    assert str(excinfo.value) == "gt must hold integer class ids, got float32"


@pytest.mark.parametrize(
    ("role", "shape"),
    [
        ("gt", (5,)),
        ("gt", ()),
        ("gt", (1, 2, 3, 4, 5)),
        ("pred", (5,)),
        ("pred", (1, 2, 3, 4, 5)),
        ("image", (7,)),
    ],
)
def test_arrays_of_the_wrong_rank_are_refused_with_their_shape(role: str, shape: tuple[int, ...]) -> None:
    arrays: dict[str, np.ndarray | None] = {"gt": labels((4, 4)), "pred": labels((4, 4)), "image": None}
    arrays[role] = np.zeros(shape, dtype=np.uint8)

    with pytest.raises(ArtifactError) as excinfo:
        normalise(arrays["gt"], arrays["pred"], arrays["image"], names=NAMES)  # type: ignore[arg-type]

    message = str(excinfo.value)
    assert message.startswith(f"{NAMES[role]}: {role} must have 2 to 4 dimensions")
    assert str(shape) in message


def test_four_dimensional_gt_is_refused() -> None:
    with pytest.raises(ArtifactError, match=r"gt must be \(H, W\) or \(N, H, W\), got shape \(2, 3, 4, 4\)"):
        normalise(labels((2, 3, 4, 4)), labels((2, 3, 4, 4)), None)


@pytest.mark.parametrize(
    ("gt_shape", "pred_shape", "image_shape"),
    [
        ((0, 4, 4), (0, 4, 4), None),
        ((4, 0), (4, 0), None),
        ((2, 4, 4), (2, 0, 4, 4), None),
        ((4, 4), (4, 4), (4, 0)),
    ],
)
def test_zero_size_arrays_are_refused(
    gt_shape: tuple[int, ...], pred_shape: tuple[int, ...], image_shape: tuple[int, ...] | None
) -> None:
    image = None if image_shape is None else np.zeros(image_shape, dtype=np.uint8)

    with pytest.raises(ArtifactError, match="is empty, got shape") as excinfo:
        normalise(np.zeros(gt_shape, np.uint8), np.zeros(pred_shape, np.float32), image)

    empty_shape = next(s for s in (gt_shape, pred_shape, image_shape) if s is not None and 0 in s)
    assert str(empty_shape) in str(excinfo.value)


def test_shape_mismatch_names_both_files_and_shapes() -> None:
    with pytest.raises(ArtifactError) as excinfo:
        normalise(labels((4, 64, 64)), labels((4, 64, 32)), None, names=NAMES)

    assert str(excinfo.value).startswith(
        "shape mismatch: gt /d/e3/gt.npy (4, 64, 64) vs pred /d/e3/pred.npy (4, 64, 32)"
    )


@pytest.mark.parametrize(
    ("gt_shape", "pred_shape", "class_axis", "hint"),
    [
        (
            (4, 8, 8),
            (3, 8, 8),
            "first",
            "expected pred (4, 8, 8), or scores (4, C, 8, 8) with class_axis='first'",
        ),
        ((4, 8, 8), (4, 8, 8, 5), "first", "scores (4, C, 8, 8)"),
        (
            (4, 8, 8),
            (4, 5, 8, 8),
            "last",
            "expected pred (4, 8, 8), or scores (4, 8, 8, C) with class_axis='last'",
        ),
        ((8, 8), (5, 8, 7), "first", "scores (C, 8, 8)"),
        ((8, 8), (2, 5, 8, 8), "first", "scores (C, 8, 8)"),
        ((8, 8), (8,) * 4, "last", "scores (8, 8, C)"),
    ],
)
def test_score_shape_mismatch_says_what_was_expected(
    gt_shape: tuple[int, ...], pred_shape: tuple[int, ...], class_axis: str, hint: str
) -> None:
    with pytest.raises(ArtifactError) as excinfo:
        normalise(labels(gt_shape), scores(pred_shape), None, class_axis=class_axis)  # type: ignore[arg-type]

    message = str(excinfo.value)
    assert message.startswith(f"shape mismatch: gt {gt_shape} vs pred {pred_shape}; ")
    assert hint in message


def test_integer_pred_with_an_extra_axis_is_a_mismatch() -> None:
    with pytest.raises(ArtifactError) as excinfo:
        normalise(labels((8, 8)), labels((3, 8, 8)), None, names=NAMES)

    message = str(excinfo.value)
    assert message.startswith("shape mismatch: gt /d/e3/gt.npy (8, 8) vs pred /d/e3/pred.npy (3, 8, 8)")
    assert "only float scores carry a class axis" in message


def test_pred_of_another_kind_is_refused() -> None:
    with pytest.raises(
        ArtifactError, match="pred must hold integer class ids or float scores, got complex64"
    ):
        normalise(labels((4, 4)), np.zeros((4, 4), np.complex64), None)


def test_class_axis_must_be_first_or_last() -> None:
    with pytest.raises(ValueError, match="class_axis"):
        normalise(labels((4, 4)), labels((4, 4)), None, class_axis="middle")  # type: ignore[arg-type]


# --- float predictions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", ">f4"])
def test_probability_map_is_thresholded(dtype: str) -> None:
    probabilities = np.array([[0.0, 0.49, 0.5], [0.51, 1.0, 0.2]], dtype=dtype)

    (default,) = normalise(labels((2, 3)), probabilities, None)
    (strict,) = normalise(labels((2, 3)), probabilities, None, threshold=0.75)

    assert default.pred.tolist() == [[0, 0, 1], [1, 1, 0]]
    assert strict.pred.tolist() == [[0, 0, 0], [0, 1, 0]]
    assert np.issubdtype(default.pred.dtype, np.integer)


@pytest.mark.parametrize("class_axis", ["first", "last"])
def test_single_class_scores_are_thresholded(class_axis: str) -> None:
    probabilities = np.array(
        [[[0.1, 0.9], [0.5, 0.4]], [[0.7, 0.2], [0.0, 1.0]]], dtype=np.float32
    )  # (N, H, W)
    with_class_axis = probabilities[:, None] if class_axis == "first" else probabilities[..., None]

    items = normalise(labels((2, 2, 2)), with_class_axis, None, class_axis=class_axis)  # type: ignore[arg-type]

    assert [item.pred.tolist() for item in items] == [[[0, 1], [1, 0]], [[1, 0], [0, 1]]]


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("class_axis", ["first", "last"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", ">f2", ">f8"])
def test_scores_are_argmaxed_like_numpy(batched: bool, class_axis: str, dtype: str) -> None:
    lead = (3,) if batched else ()
    class_first = scores((*lead, 7, 5, 6), seed=3, dtype=dtype)
    pred = class_first if class_axis == "first" else np.moveaxis(class_first, -3, -1).copy()
    gt = labels((*lead, 5, 6))

    items = normalise(gt, pred, None, class_axis=class_axis)  # type: ignore[arg-type]

    expected = np.argmax(class_first, axis=-3)
    got = np.stack([item.pred for item in items]) if batched else items[0].pred
    np.testing.assert_array_equal(got, expected)
    assert len(items) == (3 if batched else 1)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("seed", range(5))
def test_argmax_ties_go_to_the_lowest_class(dtype: str, seed: int) -> None:
    # Few distinct values make ties the rule rather than the exception.
    class_first = np.random.default_rng(seed).integers(-2, 3, size=(6, 9, 11)).astype(dtype)

    got = argmax_over_classes(class_first)

    np.testing.assert_array_equal(got, np.argmax(class_first, axis=0))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_argmax_special_values(dtype: str) -> None:
    values = np.array(
        [
            [-0.0, 0.0, -np.inf, np.inf, -1.0, 65504.0, -np.inf],
            [0.0, -0.0, -np.inf, np.inf, -0.5, 65504.0, -np.inf],
            [-0.0, -0.0, -np.inf, 1.0, -0.25, 6e-8, -np.inf],
        ],
        dtype=dtype,
    )[:, np.newaxis, :]  # (C=3, H=1, W=7)

    got = argmax_over_classes(values)

    np.testing.assert_array_equal(got, np.argmax(values, axis=0))
    assert got.tolist() == [[0, 0, 0, 0, 2, 0, 0]]


def test_argmax_over_many_blocks_and_many_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny work buffer forces one row per block, so the block bookkeeping is exercised.
    monkeypatch.setattr(argmax_module, "_WORK_BUFFER_BYTES", 64)
    class_first = scores((300, 7, 5), seed=4, dtype="float16")

    got = argmax_over_classes(class_first)

    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, np.argmax(class_first, axis=0))


def test_argmax_reads_a_strided_class_last_view() -> None:
    class_last = scores((9, 10, 4), seed=5, dtype="float16")

    got = argmax_over_classes(np.moveaxis(class_last, -1, 0))

    np.testing.assert_array_equal(got, np.argmax(class_last, axis=-1))


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.dtype("float16"), np.dtype("float32"), np.dtype(">f2")]),
        shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
        elements={"allow_nan": False},
    )
)
def test_argmax_equals_numpy_on_any_finite_or_infinite_scores(class_first: np.ndarray) -> None:
    np.testing.assert_array_equal(argmax_over_classes(class_first), np.argmax(class_first, axis=0))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", ">f2"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("class_count", [1, 4])
def test_nan_in_scores_names_the_file(dtype: str, sign: float, class_count: int) -> None:
    pred = scores((2, class_count, 4, 4), seed=6, dtype=dtype)
    if class_count == 1:  # a single channel is a probability map: values in [0, 1]
        pred = (1 / (1 + np.exp(-pred.astype(np.float64)))).astype(dtype)
    pred[1, class_count - 1, 2, 3] = sign * np.nan

    with pytest.raises(ArtifactError) as excinfo:
        normalise(labels((2, 4, 4)), pred, None, names=NAMES)

    assert str(excinfo.value).startswith("/d/e3/pred.npy: pred ")
    assert "contain NaN" in str(excinfo.value)


def test_nan_in_probability_map_names_the_file() -> None:
    pred = np.full((3, 3), 0.7, dtype=np.float32)
    pred[1, 1] = np.nan

    with pytest.raises(ArtifactError, match=r"^/d/e3/pred\.npy: pred probabilities contain NaN"):
        normalise(labels((3, 3)), pred, None, names=NAMES)


# --- images -------------------------------------------------------------------------------------------------


def test_rgb_uint8_image_is_passed_through() -> None:
    image = labels((2, 4, 5, 3), classes=256, seed=7)

    items = normalise(labels((2, 4, 5)), labels((2, 4, 5)), image)

    for index, item in enumerate(items):
        assert item.image is not None
        assert np.shares_memory(item.image, image)
        np.testing.assert_array_equal(item.image, image[index])


@pytest.mark.parametrize("gray_shape", [(4, 5), (4, 5, 1)])
def test_gray_image_is_repeated_to_three_channels(gray_shape: tuple[int, ...]) -> None:
    gray = labels(gray_shape, classes=256, seed=8)

    (item,) = normalise(labels((4, 5)), labels((4, 5)), gray)

    assert item.image is not None
    assert item.image.shape == (4, 5, 3) and item.image.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(item.image[..., channel], gray.reshape(4, 5))


@pytest.mark.parametrize("gray_shape", [(2, 4, 5), (2, 4, 5, 1)])
def test_batched_gray_images(gray_shape: tuple[int, ...]) -> None:
    gray = labels(gray_shape, classes=256, seed=9)

    items = normalise(labels((2, 4, 5)), labels((2, 4, 5)), gray)

    for index, item in enumerate(items):
        assert item.image is not None and item.image.shape == (4, 5, 3)
        np.testing.assert_array_equal(item.image[..., 1], gray[index].reshape(4, 5))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", ">f4"])
def test_float_image_is_clipped_and_rounded_never_wrapped(dtype: str) -> None:
    image = np.array([[1.5, -0.2, 0.0, 1.0, 0.5, 0.2, np.inf, -np.inf]], dtype=dtype)

    (item,) = normalise(labels((1, 8)), labels((1, 8)), image)

    assert item.image is not None
    assert item.image[..., 0].tolist() == [[255, 0, 0, 255, 128, 51, 255, 0]]


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint16", "int64", "uint64", ">i2"])
def test_integer_image_is_clipped_to_the_byte_range(dtype: str) -> None:
    values = [0, 1, 100, 127] + ([] if dtype in ("uint16", "uint64") else [-5, -128])
    if np.iinfo(np.dtype(dtype)).max > 255:
        values += [255, 256, 1000]
    image = np.array([values], dtype=dtype)

    (item,) = normalise(labels((1, len(values))), labels((1, len(values))), image)

    assert item.image is not None
    assert item.image[0, :, 0].tolist() == [min(max(v, 0), 255) for v in values]


def test_bool_image_is_black_and_white() -> None:
    (item,) = normalise(labels((1, 2)), labels((1, 2)), np.array([[True, False]]))

    assert item.image is not None
    assert item.image[0].tolist() == [[255, 255, 255], [0, 0, 0]]


def test_nan_in_image_names_the_file() -> None:
    image = np.zeros((2, 4, 4, 3), dtype=np.float32)
    image[1, 0, 0, 2] = np.nan

    with pytest.raises(
        ArtifactError, match=r"^/d/e3/image\.npy: image contains NaN \(shape \(2, 4, 4, 3\)\)"
    ):
        normalise(labels((2, 4, 4)), labels((2, 4, 4)), image, names=NAMES)


@pytest.mark.parametrize(
    ("gt_shape", "image_shape"),
    [
        ((4, 5), (4, 6, 3)),
        ((4, 5), (4, 5, 4)),
        ((2, 4, 5), (3, 4, 5, 3)),
        ((2, 4, 5), (4, 5, 3)),
        ((4, 5), (5, 4)),
    ],
)
def test_image_shape_must_match_gt(gt_shape: tuple[int, ...], image_shape: tuple[int, ...]) -> None:
    with pytest.raises(ArtifactError) as excinfo:
        normalise(labels(gt_shape), labels(gt_shape), np.zeros(image_shape, np.uint8), names=NAMES)

    message = str(excinfo.value)
    assert message.startswith(
        f"shape mismatch: gt /d/e3/gt.npy {gt_shape} vs image /d/e3/image.npy {image_shape}"
    )
    assert f"expected image {gt_shape}" in message


def test_image_of_another_kind_is_refused() -> None:
    with pytest.raises(ArtifactError, match="image must be uint8, integer or float in"):
        normalise(labels((2, 2)), labels((2, 2)), np.zeros((2, 2, 3), np.complex64))


def test_items_are_frozen() -> None:
    (item,) = normalise(labels((2, 2)), labels((2, 2)), None)

    with pytest.raises(dataclasses.FrozenInstanceError):
        item.gt = labels((2, 2))  # type: ignore[misc]
    assert isinstance(item, Item)


# --- what a prediction is: decided by rule ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", ">f4"])
@pytest.mark.parametrize("num_classes", [2, 5])
def test_float_class_ids_with_gts_shape_are_labels(dtype: str, num_classes: int) -> None:
    gt = np.random.default_rng(1).integers(0, num_classes, size=(2, 9, 7)).astype(np.uint8)

    items = normalise(gt, gt.astype(dtype), None, num_classes=num_classes)

    np.testing.assert_array_equal(np.stack([item.pred for item in items]), gt)
    assert all(np.issubdtype(item.pred.dtype, np.integer) for item in items)


def test_float_class_ids_are_confirmed_exactly_beyond_the_sample() -> None:
    # Big enough that the sample skips most values: the one fractional value is found by the full read.
    pred = np.random.default_rng(2).integers(0, 5, size=(200, 200)).astype(np.float32)
    pred[123, 77] = 2.5
    assert (np.arange(pred.size)[:: pred.size // 4096] != 123 * 200 + 77).all()

    with pytest.raises(
        ArtifactError, match=r"^/d/e3/pred\.npy: pred holds float class ids but 1 values are not"
    ):
        normalise(labels((200, 200)), pred, None, num_classes=5, names=NAMES)


def test_a_probability_map_with_more_than_two_classes_is_an_error_naming_everything() -> None:
    pred = np.linspace(0.05, 0.95, 12, dtype=np.float32).reshape(3, 4)

    with pytest.raises(ArtifactError) as excinfo:
        normalise(labels((3, 4)), pred, None, num_classes=5, names=NAMES)

    message = str(excinfo.value)
    for part in ("/d/e3/pred.npy", "shape (3, 4)", "float32", "values 0.05 to 0.95", "num_classes 5"):
        assert part in message
    assert "compose.pred_kind" in message


@pytest.mark.parametrize("class_axis", ["first", "last"])
def test_a_single_channel_map_with_more_than_two_classes_is_an_error(class_axis: str) -> None:
    plane = np.random.default_rng(3).random((2, 4, 4)).astype(np.float32)
    pred = plane[:, None] if class_axis == "first" else plane[..., None]

    with pytest.raises(ArtifactError, match=r"single-channel pred .* needs num_classes 2.*num_classes 5"):
        normalise(labels((2, 4, 4)), pred, None, class_axis=class_axis, num_classes=5)  # type: ignore[arg-type]


def test_probabilities_outside_the_unit_interval_are_an_error() -> None:
    pred = np.array([[-0.5, 0.25], [1.5, 0.75]], dtype=np.float32)

    with pytest.raises(ArtifactError, match=r"values -0\.5 to 1\.5"):
        normalise(labels((2, 2)), pred, None, num_classes=2)


def test_pred_kind_says_it_outright() -> None:
    probabilities = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    (item,) = normalise(labels((2, 2)), probabilities, None, num_classes=2, pred_kind="probability")
    assert item.pred.tolist() == [[0, 1], [1, 0]]

    with pytest.raises(ArtifactError, match="pred_kind: labels needs pred with gt's shape"):
        normalise(labels((2, 2)), scores((3, 2, 2)), None, num_classes=3, pred_kind="labels")
    with pytest.raises(ArtifactError, match="pred_kind: scores needs a class axis"):
        normalise(labels((2, 2)), probabilities, None, num_classes=2, pred_kind="scores")
    with pytest.raises(ArtifactError, match="not whole numbers"):
        normalise(labels((2, 2)), probabilities + 0.5, None, num_classes=5, pred_kind="labels")


def test_a_shape_that_fits_the_other_class_axis_says_so() -> None:
    with pytest.raises(ArtifactError, match=r"this shape fits compose\.class_axis: last"):
        normalise(labels((2, 8, 6)), scores((2, 8, 6, 5)), None, class_axis="first", names=NAMES)
