"""Metric summaries of an epoch: tags, values, undefined values left out, the table and the heatmap."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from segwatch.errors import ArtifactError
from segwatch.render.evaluation import epoch_confusion, item_confusion, metric_summaries
from segwatch.render.figures import (
    ABSENT_ROW,
    HEATMAP_PALETTE,
    TARGET_WIDTH,
    confusion_heatmap,
    heat_colours,
    heatmap_indices,
    heatmap_layout,
)
from segwatch.render.items import Item
from segwatch.render.lettering import line_height, text_levels


def test_prediction_of_ignore_index_counts_against_the_class_but_predicts_none() -> None:
    gt = np.array([[0, 0], [1, 255]], dtype=np.uint8)
    pred = np.array([[0, 255], [1, 1]], dtype=np.uint8)
    counts = item_confusion(Item(gt, pred, None), 2, 255)
    np.testing.assert_array_equal(counts, [[1, 0, 1], [0, 1, 0]])
    summaries = {s.tag: s.payload for s in metric_summaries("p", counts)}
    assert summaries["p_IoU/0"] == pytest.approx(0.5)
    assert summaries["p/pixel_accuracy"] == pytest.approx(2 / 3)


def test_unknown_class_id_names_the_file() -> None:
    gt = np.zeros((2, 2), dtype=np.uint8)
    pred = np.array([[0, 9], [0, 0]], dtype=np.uint8)
    with pytest.raises(ArtifactError, match=r"p\.npy item 3: class id 9 outside \[0, 3\)"):
        item_confusion(Item(gt, pred, None, files={"pred": "p.npy item 3"}), 3, 255)


def test_undefined_values_are_not_written_and_the_table_shows_a_dash() -> None:
    gt = np.array([[0, 0], [2, 2]], dtype=np.uint8)
    counts = epoch_confusion([item_confusion(Item(gt, gt.copy(), None), 4, None)], 4)
    summaries = {
        s.tag: s.payload for s in metric_summaries("seg", counts, class_names=("a", "b", "c/d", "e"))
    }
    assert summaries["seg/mIoU"] == 1.0
    assert "seg_IoU/a" in summaries and "seg_IoU/c_d" in summaries
    assert "seg_IoU/b" not in summaries and "seg_IoU/e" not in summaries
    assert "seg/dice" not in summaries  # only for two classes
    assert all(not math.isnan(v) for v in summaries.values() if isinstance(v, float))
    table = summaries["seg/IoU_table"]
    assert isinstance(table, str)
    assert "| b | — | — | 0 |" in table and "| a | 1.0000 | 1.0000 | 2 |" in table


def test_binary_tasks_get_dice() -> None:
    gt = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    pred = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    summaries = {
        s.tag: s.payload for s in metric_summaries("s", item_confusion(Item(gt, pred, None), 2, None))
    }
    assert summaries["s/dice"] == pytest.approx(2 * 2 / (3 + 2))


def test_an_all_ignored_epoch_writes_no_scalar() -> None:
    gt = np.full((2, 2), 255, dtype=np.uint8)
    summaries = metric_summaries("s", item_confusion(Item(gt, gt.copy(), None), 3, 255))
    assert not [s for s in summaries if isinstance(s.payload, float)]


def test_heatmap_rows_are_normalised_and_absent_rows_grey() -> None:
    confusion = np.array([[3, 1, 0], [0, 0, 0], [0, 0, 5]])
    picture = confusion_heatmap(confusion, ["a", "b", "c"])
    layout = heatmap_layout(["a", "b", "c"])
    cell = layout.cell
    matrix = picture[layout.top : layout.top + 3 * cell, layout.left : layout.left + 3 * cell]
    # A cell's corner is clear of its value's digits.
    np.testing.assert_array_equal(matrix[2, 2], heat_colours(np.array(0.75)))
    np.testing.assert_array_equal(matrix[2, cell + 2], heat_colours(np.array(0.25)))
    np.testing.assert_array_equal(matrix[cell + 2, 2], ABSENT_ROW)
    np.testing.assert_array_equal(matrix[-1, -1], heat_colours(np.array(1.0)))
    assert layout.names == ("a", "b", "c") and layout.value_size > 0
    # The values: dark digits on the light 25 % cell, white ones on the dark 100 % cell.
    light_cell = matrix[:cell, cell : 2 * cell]
    assert (light_cell.sum(axis=-1) < 3 * 100).any()
    dark_cell = matrix[2 * cell :, 2 * cell :]
    assert (dark_cell.min(axis=-1) > 200).any()
    # Axis titles and names above and left of the matrix, the colour scale right of it.
    assert (picture[: layout.top].sum(axis=-1) < 3 * 100).any()
    assert (picture[:, : layout.left].sum(axis=-1) < 3 * 100).any()
    bar = picture[layout.top : layout.top + 3 * cell, layout.scale_left + 2]
    np.testing.assert_array_equal(bar[1], heat_colours(np.array(1.0)))
    np.testing.assert_array_equal(bar[-2], heat_colours(np.array(0.0)))


def test_the_heatmap_is_wider_than_a_card_so_tensorboard_never_upscales_it() -> None:
    for count in (2, 6, 19, 40, 150):
        picture = confusion_heatmap(np.eye(count, dtype=np.int64), [f"class {c}" for c in range(count)])
        assert picture.shape[1] >= TARGET_WIDTH - count, count


def test_many_classes_give_a_heatmap_without_names_or_values() -> None:
    layout = heatmap_layout([str(c) for c in range(300)])
    assert layout.names == () and layout.value_size == 0
    picture = confusion_heatmap(np.eye(300, dtype=np.int64), [str(c) for c in range(300)])
    assert picture.shape[:2] == (layout.height, layout.width)


def _inked(region: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """The bounding box of the pixels that differ from `backdrop`, as a bool mask."""
    ink = (region != backdrop).any(axis=-1)
    if not ink.any():
        return ink[:0, :0]
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _text_shape(text: str, size: int) -> np.ndarray:
    levels = text_levels(text, size) > 0
    rows, cols = np.flatnonzero(levels.any(axis=1)), np.flatnonzero(levels.any(axis=0))
    return levels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def test_the_logged_heatmap_shows_each_cells_share_and_each_rows_name() -> None:
    """Decoded from the summary's PNG: every cell's colour is its row share's, every nonzero cell carries its
    share in percent (the digits' exact shapes), zero cells are blank, and each row is named."""
    names = ("road", "sky", "car", "bike")
    confusion = np.array([[6, 2, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 7, 0, 0], [1, 0, 0, 399, 0]])
    (summary,) = [
        s for s in metric_summaries("m", confusion, class_names=names) if s.tag == "m/confusion_matrix"
    ]
    payload = summary.payload
    assert isinstance(payload, tuple)
    with Image.open(io.BytesIO(payload[2])) as image:
        assert image.mode == "P"  # paletted, like the label composites
        picture = np.array(image.convert("RGB"))
    np.testing.assert_array_equal(picture, confusion_heatmap(confusion[:, :4], list(names)))
    layout = heatmap_layout(names)
    cell = layout.cell
    expected = {(0, 0): "75", (0, 1): "25", (1, 0): "50", (1, 1): "50", (2, 2): "100", (3, 0): "<1"}
    expected[(3, 3)] = "100"  # 399/400 rounds to 100
    for gt in range(4):
        shares = confusion[gt, :4] / confusion[gt].sum()
        for pred in range(4):
            top, left = layout.top + gt * cell, layout.left + pred * cell
            square = picture[top : top + cell, left : left + cell]
            np.testing.assert_array_equal(square[0, 0], heat_colours(np.array(shares[pred])))
            digits = _inked(square, square[0, 0])
            if (gt, pred) in expected:
                np.testing.assert_array_equal(digits, _text_shape(expected[(gt, pred)], layout.value_size))
            else:
                assert digits.size == 0, (gt, pred)
        title = line_height(layout.size) + layout.size // 3  # the "ground truth" title runs up the left edge
        band = picture[layout.top + gt * cell : layout.top + (gt + 1) * cell, title : layout.left]
        np.testing.assert_array_equal(_inked(band, picture[0, 0]), _text_shape(names[gt], layout.size))


def test_the_heatmap_fits_a_png_palette_and_its_ramp_ends_exactly() -> None:
    assert len(HEATMAP_PALETTE) <= 256
    np.testing.assert_array_equal(heat_colours(np.array([0.0, 1.0])), [[255, 255, 255], [8, 48, 107]])
    indices = heatmap_indices(np.eye(3, dtype=np.int64), ["a", "b", "c"])
    assert indices.dtype == np.uint8 and int(indices.max()) < len(HEATMAP_PALETTE)
