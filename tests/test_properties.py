"""Properties over generated input: the loader, the normaliser, the composer and the metrics.

The loader never fails on a file with anything but ArtifactError (NotReadyError for a file that may still
grow); whatever passes validation composes into a picture of the expected size in palette, pad, gutter and
ignore colours only; metrics are never NaN.
"""

from __future__ import annotations

import ast
import io
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segwatch.errors import ArtifactError, NotReadyError
from segwatch.intake.npy import MAGIC, check_complete, load_array
from segwatch.metrics.confusion import confusion_matrix, scores
from segwatch.render.compose import ComposeOptions, compose_grid
from segwatch.render.indexspace import IndexSpace
from segwatch.render.normalise import normalise
from segwatch.render.palettes import build_palette

FAST = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
CAPS = {"max_file_bytes": 1 << 24, "max_pixels": 1 << 20}
ALLOWED = ["|b1", "|i1", "|u1", "<i2", ">i2", "<u2", "<i4", ">u4", "<i8", "<u8", "<f2", "<f4", ">f4", "<f8"]
REFUSED = [
    *["'|O'", "'<U3'", "'|S2'", "'<c8'", "'<M8[s]'", "'<m8[D]'", "'|V4'", "'<f16'", "'i4, f8'", "'(2,)i4'"],
    *["[('a', '<i4')]", "'int'", "(1, 2)", "'|, 4), } 1u1'", "'i4, (2'", "'(('", "None"],
]


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Module-scoped: hypothesis reruns a test body many times, and function-scoped fixtures would not reset.
    with tempfile.TemporaryDirectory(prefix="segwatch-properties-") as directory:
        yield Path(directory) / "file.npy"


def every_loader_call(path: Path) -> list[object]:
    """Run each entry point of the loader on `path`; return what each gave or raised (only ours allowed)."""
    outcomes: list[object] = []
    for call in (
        lambda: check_complete(path),
        lambda: check_complete(path, path.parent, **CAPS),
        lambda: load_array(path, **CAPS),
        lambda: load_array(path, root=path.parent, **CAPS),
    ):
        try:
            result = call()
        except ArtifactError as exc:  # NotReadyError is one
            message = str(exc)
            assert message.startswith(f"{path}: "), message
            assert "\n" not in message, message
            outcomes.append(exc)
        else:
            if isinstance(result, np.ndarray):
                # A loaded array is readable in full (the header did not lie about the data).
                result.tobytes()
                del result
            outcomes.append("ok")
    return outcomes


# --- the loader -----------------------------------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=300))
def test_random_bytes_never_fail_with_anything_else(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(data)
    every_loader_call(scratch)


@FAST
@given(data=st.binary(max_size=200))
def test_random_bytes_after_the_magic_never_fail_with_anything_else(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(MAGIC + data)
    every_loader_call(scratch)


def header_text(descr: str, fortran: str, shape: str) -> str:
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


dims = st.one_of(st.integers(-3, 8), st.integers(-(2**70), 2**70), st.just(0))
shapes = st.one_of(
    st.lists(dims, max_size=6).map(lambda d: repr(tuple(d))),
    st.sampled_from(["()", "(3,)", "[2, 3]", "'big'", "(2.0, 3)", "(True, 4)", "None", "(1, (2,))"]),
)
descrs = st.one_of(
    st.sampled_from(ALLOWED).map(repr),
    st.sampled_from(REFUSED),
    st.text(max_size=8).map(repr),
    # What numpy's own type-string parser sees: sizes, byte orders, commas and brackets.
    st.text(alphabet="<>|=ifucbSUVOMm0123456789,() []", max_size=12).map(repr),
)
fortrans = st.sampled_from(["False", "True", "0", "'no'", "None"])


@FAST
@given(
    descr=descrs,
    fortran=fortrans,
    shape=shapes,
    version=st.sampled_from([(1, 0), (2, 0), (3, 0)]),
    extra=st.integers(-40, 40),
    wrapper=st.sampled_from(["{}", "[{}]", "{}{}", "({},)", "{{'x': {}}}"]),
)
def test_forged_headers_never_fail_with_anything_else(
    scratch: Path, descr: str, fortran: str, shape: str, version: tuple[int, int], extra: int, wrapper: str
) -> None:
    """Whatever the header claims, with data of about the promised size (a little short or long)."""
    text = header_text(descr, fortran, shape)
    text = wrapper.format(text, text) if wrapper.count("{}") == 2 else wrapper.format(text)
    encoded = text.encode("latin1" if version < (3, 0) else "utf8", errors="replace") + b"\n"
    width = 2 if version == (1, 0) else 4
    preamble = MAGIC + bytes(version) + len(encoded).to_bytes(width, "little")
    promised = 0
    try:
        dims_value = ast.literal_eval(shape)
        dtype = np.dtype(ast.literal_eval(descr))
    except (ValueError, TypeError, SyntaxError, DeprecationWarning):  # a deprecated alias such as 'a'
        pass
    else:
        small = isinstance(dims_value, tuple) and all(type(d) is int and 0 <= d < 64 for d in dims_value)
        # Only small promises are kept: the file is really written.
        if small and dtype.itemsize * math.prod(dims_value) <= 1 << 16:
            promised = dtype.itemsize * math.prod(dims_value)
    scratch.write_bytes(preamble + encoded + bytes(max(0, promised + extra)))
    outcomes = every_loader_call(scratch)
    event("some call loaded it" if "ok" in outcomes else "refused or waited")
    if (
        promised
        and extra == 0
        and wrapper == "{}"
        and fortran in ("False", "True")
        and descr.strip("'") in ALLOWED
    ):
        assert outcomes == ["ok"] * len(outcomes), outcomes


@FAST
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(ALLOWED).map(np.dtype),
        # min_side=1: a zero-size array is refused (tests/intake/test_filearrays.py).
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=6),
    ),
    fortran=st.booleans(),
    version=st.sampled_from([None, (1, 0), (2, 0), (3, 0)]),
)
def test_what_numpy_saves_loads_back_equal_and_every_prefix_waits(
    scratch: Path, array: np.ndarray, fortran: bool, version: tuple[int, int] | None
) -> None:
    if fortran:
        array = np.asfortranarray(array)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    whole = buffer.getvalue()
    scratch.write_bytes(whole)
    loaded = load_array(scratch, **CAPS)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(np.asarray(loaded), array)
    del loaded
    # A file cut anywhere is one still being written: waited for, never refused.
    for cut in sorted({0, 3, 7, 9, len(whole) // 2, len(whole) - 1}):
        if 0 <= cut < len(whole):
            scratch.write_bytes(whole[:cut])
            with pytest.raises(NotReadyError):
                check_complete(scratch, **CAPS)


# --- the normaliser and the composer ----------------------------------------------------------------------

NUM_CLASSES = 6
IGNORE = 255
label_dtypes = st.sampled_from(["|u1", "<i2", ">i4", "<i8", "<u2", "|b1", "|i1"]).map(np.dtype)
score_dtypes = st.sampled_from(["<f2", "<f4", ">f4", "<f8"]).map(np.dtype)
image_dtypes = st.sampled_from(["|u1", "<f4", "<f8", "|b1", "<i2", "<u2"]).map(np.dtype)


def label_elements(dtype: np.dtype, *, ignore: bool) -> st.SearchStrategy[object]:
    if dtype.kind == "b":
        return st.booleans()
    ids: st.SearchStrategy[object] = st.integers(0, NUM_CLASSES - 1)
    return ids | st.just(IGNORE) if ignore and np.can_cast(np.min_scalar_type(IGNORE), dtype) else ids


@st.composite
def dumps(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """gt, pred, image as a training job might dump them: mostly consistent, sometimes not."""
    batch = draw(st.sampled_from([(), (1,), (3,)]))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    spatial = (*batch, height, width)
    gt_dtype = draw(label_dtypes)
    gt = draw(hnp.arrays(gt_dtype, spatial, elements=label_elements(gt_dtype, ignore=True)))
    kind = draw(st.sampled_from(["labels", "scores-first", "scores-last", "probabilities", "wrong-shape"]))
    if kind == "labels":
        pred_dtype = draw(label_dtypes)
        pred = draw(hnp.arrays(pred_dtype, spatial, elements=label_elements(pred_dtype, ignore=False)))
    elif kind == "wrong-shape":
        pred = np.zeros((*batch, height + 1, width), np.int32)
    else:
        classes = draw(st.integers(1, NUM_CLASSES)) if kind != "probabilities" else None
        if kind == "scores-first":
            shape = (*batch, classes, height, width)
        elif kind == "scores-last":
            shape = (*batch, height, width, classes)
        else:
            shape = spatial
        floats = st.floats(-1e4, 1e4, width=16) | st.sampled_from([np.inf, -np.inf, np.nan])
        pred = draw(hnp.arrays(draw(score_dtypes), shape, elements=floats))
    image = None
    if draw(st.booleans()):
        channels = draw(st.sampled_from([(), (1,), (3,), (4,)]))
        image_shape = spatial if draw(st.integers(0, 9)) else (*batch, height, width + 2)
        image = draw(hnp.arrays(draw(image_dtypes), (*image_shape, *channels)))
    return gt, pred, image


@FAST
@given(dump=dumps(), class_axis=st.sampled_from(["first", "last"]))
def test_normalise_either_refuses_or_gives_matching_items(
    dump: tuple[np.ndarray, np.ndarray, np.ndarray | None], class_axis: str
) -> None:
    gt, pred, image = dump
    try:
        items = normalise(gt, pred, image, class_axis=class_axis)  # type: ignore[arg-type]
    except ArtifactError:
        event("refused")
        return
    event("normalised")
    assert len(items) == (gt.shape[0] if gt.ndim == 3 else 1)
    for item in items:
        assert item.gt.ndim == 2 and item.gt.shape == item.pred.shape == gt.shape[-2:]
        assert item.pred.dtype.kind in "biu"
        if item.image is not None:
            assert item.image.shape == (*gt.shape[-2:], 3) and item.image.dtype == np.uint8


@FAST
@given(
    dump=dumps(),
    panel=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    resize=st.sampled_from(["letterbox", "stretch"]),
    columns=st.integers(1, 4),
    gutter=st.integers(0, 3),
    palette=st.sampled_from(["voc", "cityscapes", "ade20k"]),
)
def test_anything_that_passes_validation_composes_in_reserved_and_palette_colours_only(
    dump: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    panel: tuple[int, int],
    resize: str,
    columns: int,
    gutter: int,
    palette: str,
) -> None:
    gt, pred, image = dump
    try:
        items = normalise(gt, pred, image, num_classes=NUM_CLASSES)
    except ArtifactError:
        event("refused")
        return
    event(f"composed {len(items)} items, {'RGB' if image is not None else 'paletted'}")
    space = IndexSpace(
        num_classes=NUM_CLASSES, ignore_index=IGNORE, palette=build_palette(palette, NUM_CLASSES)
    )
    panels = ("gt", "pred")
    options = ComposeOptions(panel, resize, panels, columns, gutter)  # type: ignore[arg-type]
    try:
        composite = compose_grid(items, space, options, source="s")
    except ArtifactError:
        # Float class ids are labels: one past the classes is refused where integer ones are, in the composer.
        event("refused by the composer")
        return
    columns_used = min(columns, len(items))
    rows = -(-len(items) // columns_used)
    cell_width = len(panels) * (panel[1] + gutter) - gutter
    expected = (rows * (panel[0] + gutter) - gutter, columns_used * (cell_width + gutter) - gutter)
    assert composite.pixels.shape[:2] == expected
    full = space.full_palette()
    if composite.palette is None:
        colours = {tuple(c) for c in composite.pixels.reshape(-1, 3)}
    else:
        assert composite.pixels.max() < len(full)
        colours = {tuple(full[i]) for i in np.unique(composite.pixels)}
    assert colours <= {tuple(c) for c in full}


@FAST
@given(
    labels=hnp.arrays(
        np.int16, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=st.integers(-4, 12)
    )
)
def test_class_ids_outside_the_range_are_refused_with_artifact_error_only(labels: np.ndarray) -> None:
    space = IndexSpace(
        num_classes=NUM_CLASSES, ignore_index=IGNORE, palette=build_palette("voc", NUM_CLASSES)
    )
    options = ComposeOptions(labels.shape, "stretch", ("gt", "pred"), 1)  # type: ignore[arg-type]
    items = normalise(labels, labels, None)
    outside = (labels < 0) | (labels >= NUM_CLASSES)
    if outside.any():
        with pytest.raises(ArtifactError, match="class id"):
            compose_grid(items, space, options, source="s")
    else:
        compose_grid(items, space, options, source="s")


# --- metrics ----------------------------------------------------------------------------------------------


@FAST
@given(
    data=st.data(),
    num_classes=st.integers(1, 8),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=7),
    ignore=st.sampled_from([None, 255]),
)
def test_metrics_are_never_nan_and_always_in_range(
    data: st.DataObject, num_classes: int, shape: tuple[int, ...], ignore: int | None
) -> None:
    ids = st.integers(0, num_classes - 1)
    gt = data.draw(hnp.arrays(np.uint8, shape, elements=ids | st.just(255) if ignore is not None else ids))
    pred = data.draw(hnp.arrays(np.int64, shape, elements=ids))
    confusion = confusion_matrix(gt, pred, num_classes, ignore)
    result = scores(confusion)
    values = [
        *result.iou,
        *result.class_accuracy,
        *result.dice,
        result.mean_iou,
        result.pixel_accuracy,
        result.mean_class_accuracy,
        result.binary_dice,
    ]
    for value in values:
        assert value is None or (not math.isnan(value) and 0.0 <= value <= 1.0), values
    assert result.pixels == int(np.sum(gt != ignore) if ignore is not None else gt.size)
