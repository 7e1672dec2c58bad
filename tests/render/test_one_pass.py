"""One pass per epoch: the `present` legend comes from the metrics' per-item counts, and the pictures are the
same as when the legend looks at the label maps itself."""

from __future__ import annotations

import numpy as np

from segwatch.config import config_from_mapping
from segwatch.plan import epoch_plan
from segwatch.render.evaluation import classes_present, item_counts
from segwatch.render.insight import Insight
from segwatch.render.items import Item
from segwatch.render.legend import legend_classes

from conftest import blob_labels

CLASSES = 21


def make_insight() -> Insight:
    config = config_from_mapping(
        {"watch": {"root": "/d"}, "tensorboard": {"logdir": "/t"}, "compose": {"num_classes": CLASSES}},
        env={},
    )
    return Insight(epoch_plan(config))


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


def test_pictures_with_the_legend_from_the_counts_are_unchanged() -> None:
    insight = make_insight()
    for seed in (1, 2):
        items = epoch(seed)
        counts = [item_counts(item, CLASSES, 255) for item in items]
        (from_counts,) = insight.compose([items], "s", counts)
        (from_maps,) = insight.compose([items], "s")
        np.testing.assert_array_equal(from_counts.pixels, from_maps.pixels)
        np.testing.assert_array_equal(from_counts.palette, from_maps.palette)
