"""Metric summaries of an epoch: tags, values, undefined values left out, the table and the heatmap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segwatch.errors import ArtifactError
from segwatch.evaluation import epoch_confusion, item_confusion, metric_summaries
from segwatch.figures import ABSENT_ROW, confusion_heatmap, heat_colours
from segwatch.normalise import Item


def test_prediction_of_ignore_index_counts_against_the_class_but_predicts_none() -> None:
    gt = np.array([[0, 0], [1, 255]], dtype=np.uint8)
    pred = np.array([[0, 255], [1, 1]], dtype=np.uint8)
    counts = item_confusion(Item(gt, pred, None), 2, 255)
    np.testing.assert_array_equal(counts, [[1, 0, 1], [0, 1, 0]])
    summaries = {s.tag: s.payload for s in metric_summaries("p", counts)}
    assert summaries["p/IoU/0"] == pytest.approx(0.5)
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
    assert "seg/IoU/a" in summaries and "seg/IoU/c_d" in summaries
    assert "seg/IoU/b" not in summaries and "seg/IoU/e" not in summaries
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
    height, width = picture.shape[:2]
    cell = 32
    matrix = picture[height - 3 * cell :, width - 3 * cell :]
    np.testing.assert_array_equal(matrix[cell // 2, cell // 2], heat_colours(np.array(0.75)))
    np.testing.assert_array_equal(matrix[cell // 2, cell + cell // 2], heat_colours(np.array(0.25)))
    np.testing.assert_array_equal(matrix[cell + 5, 5], ABSENT_ROW)
    np.testing.assert_array_equal(matrix[-1, -1], heat_colours(np.array(1.0)))
    labels = picture[: height - 3 * cell]
    assert (labels == 0).all(axis=-1).any()  # class names are drawn above the columns


def test_many_classes_give_a_plain_heatmap() -> None:
    picture = confusion_heatmap(np.eye(300, dtype=np.int64), [str(c) for c in range(300)])
    assert picture.shape == (600, 600, 3)
