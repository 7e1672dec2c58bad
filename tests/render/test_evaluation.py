"""Metric summaries of an epoch: tags, values, undefined values left out, the table and the heatmap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segwatch.errors import ArtifactError
from segwatch.render.evaluation import epoch_confusion, item_confusion, metric_summaries
from segwatch.render.figures import ABSENT_ROW, TARGET_WIDTH, confusion_heatmap, heat_colours, heatmap_layout
from segwatch.render.items import Item


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
