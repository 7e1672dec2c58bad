"""Item choice (first, worst, random), the image role that overlay needs, and the metric switches."""

from __future__ import annotations

import numpy as np
import pytest

from segwatch.config import config_from_mapping
from segwatch.errors import ConfigError
from segwatch.plan import epoch_plan
from segwatch.render.insight import Insight
from segwatch.render.items import Item


def insight(**compose: object) -> Insight:
    config = config_from_mapping(
        {"watch": {"root": "/d"}, "tensorboard": {"logdir": "/t"}, "compose": {"num_classes": 3, **compose}},
        env={},
    )
    return Insight(epoch_plan(config))


def items(wrong_pixels: list[int]) -> list[Item]:
    out = []
    for wrong in wrong_pixels:
        gt = np.zeros((4, 4), dtype=np.uint8)
        gt[2:] = 1
        pred = gt.copy()
        pred.reshape(-1)[:wrong] = 2
        out.append(Item(gt, pred, None))
    return out


def test_worst_shows_lowest_miou_first() -> None:
    chooser = insight(select="worst", max_items=2)
    batch = items([0, 6, 2, 8])
    shown = chooser.choose(batch, chooser.confusions(batch))
    assert [batch.index(item) for item in shown] == [3, 1]


def test_random_is_the_same_sample_every_epoch_and_first_is_the_default() -> None:
    batch = items([0] * 10)
    picks = [
        [batch.index(i) for i in insight(select="random", seed=5, max_items=3).choose(batch, [])]
        for _ in "ab"
    ]
    assert picks[0] == picks[1] and len(set(picks[0])) == 3
    assert [batch.index(i) for i in insight(max_items=3).choose(batch, [])] == [0, 1, 2]


def test_overlay_makes_the_image_a_required_role_and_rgb() -> None:
    config = config_from_mapping(
        {"watch": {"root": "/d"}, "tensorboard": {"logdir": "/t"}, "compose": {"panels": ["gt", "overlay"]}},
        env={},
    )
    assert "image" in config.required_roles
    assert (
        "image"
        not in config_from_mapping(
            {
                "watch": {"root": "/d"},
                "tensorboard": {"logdir": "/t"},
                "compose": {"panels": ["gt", "error"]},
            },
            env={},
        ).required_roles
    )
    batch = items([2])
    assert insight(panels=["overlay"]).compose([batch], "s")[0].palette is None
    assert insight().compose([batch], "s")[0].palette is not None  # the default panels stay paletted


def test_bad_choices_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"compose\.select: expected one of first, worst, random"):
        insight(select="best")
    with pytest.raises(ConfigError, match=r"compose\.legend: expected one of none, present, all"):
        insight(legend="some")
    with pytest.raises(ConfigError, match=r"compose\.overlay_alpha"):
        insight(overlay_alpha=1.0)
