"""One pass per epoch and fixed costs paid once: the `present` legend from the metrics' counts, the heatmap
as a paletted PNG, cached legend strips and frames, and the pictures all of that must leave unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from segwatch.compose import ComposeOptions, IndexSpace, compose_grid
from segwatch.config import config_from_mapping
from segwatch.evaluation import MetricFigures, classes_present, item_counts
from segwatch.figures import confusion_heatmap, heatmap_frame, heatmap_indices
from segwatch.insight import Insight
from segwatch.legend import legend_classes, with_legend
from segwatch.normalise import Item
from segwatch.palettes import build_palette

from conftest import blob_labels, decode_png

CLASSES = 21


def space() -> IndexSpace:
    return IndexSpace(num_classes=CLASSES, ignore_index=255, palette=build_palette("voc", CLASSES))


def make_insight(**sections: dict[str, object]) -> Insight:
    config = config_from_mapping(
        {
            "watch": {"root": "/d"},
            "tensorboard": {"logdir": "/t"},
            **sections,
            "compose": {"num_classes": CLASSES, "size": [64, 64], **sections.get("compose", {})},
        },
        env={},
    )
    return Insight(config, space())


def epoch(seed: int, count: int = 4) -> list[Item]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        gt = blob_labels(rng, (96, 128), 6)
        gt[rng.random(gt.shape) < 0.05] = 255
        pred = blob_labels(rng, (96, 128), 6) + rng.integers(0, 15)
        pred[:3, :3] = 20  # a class the prediction shows only under ignored ground truth
        gt[:3, :3] = 255
        out.append(Item(gt, pred.astype(np.int64), None))
    return out


def test_present_legend_from_the_counts_lists_what_a_full_read_finds() -> None:
    items = epoch(1)
    counts = [item_counts(item, CLASSES, 255) for item in items]
    from_counts = [int(c) for c in np.flatnonzero(np.logical_or.reduce([classes_present(c) for c in counts]))]
    assert from_counts == legend_classes("present", items, CLASSES)
    assert 20 in from_counts


def test_legend_pictures_are_unchanged_and_strips_are_reused() -> None:
    insight = make_insight()
    options = ComposeOptions(panel_size=(64, 64), resize="letterbox", panels=("gt", "pred"), columns=4)
    for seed in (1, 1, 2):
        items = epoch(seed)
        counts = [item_counts(item, CLASSES, 255) for item in items]
        composed = insight.compose([items], lambda group: compose_grid(group, space(), options), "s", counts)
        expected = with_legend(
            compose_grid(items, space(), options), legend_classes("present", items, CLASSES), (), space()
        )
        np.testing.assert_array_equal(composed[0].pixels, expected.pixels)
        np.testing.assert_array_equal(composed[0].palette, expected.palette)
    assert len(insight._legends) == 2  # the repeated epoch drew no new strip


@pytest.mark.parametrize("classes", [2, 5, 21, 40, 300])
def test_paletted_heatmap_is_the_rgb_heatmap(classes: int) -> None:
    rng = np.random.default_rng(classes)
    confusion = rng.integers(0, 50, (classes, classes)) * (rng.random((classes, classes)) < 0.5)
    confusion[classes // 2] = 0  # a class absent from the ground truth: its grey row
    labels = [f"class {c}" for c in range(classes)]
    indexed = heatmap_indices(confusion, labels, frame=heatmap_frame(labels))
    if indexed is None:
        assert classes == 300  # more than 256 colours stay RGB
        return
    pixels, palette = indexed
    np.testing.assert_array_equal(palette[pixels], confusion_heatmap(confusion, labels))


def test_metric_figures_write_the_same_heatmap_epoch_after_epoch() -> None:
    figures = MetricFigures("s", CLASSES, class_names=tuple(f"c{c}" for c in range(CLASSES)))
    for seed in (3, 4):
        counts = sum(item_counts(item, CLASSES, 255) for item in epoch(seed))[:CLASSES]
        (image,) = [s for s in figures.summaries(counts) if s.tag == "s/confusion_matrix"]
        assert isinstance(image.payload, tuple)
        expected = confusion_heatmap(counts[:, :CLASSES], [f"c{c}" for c in range(CLASSES)])
        np.testing.assert_array_equal(decode_png(image.payload[2]), expected)
