"""`check-config` accepts only configs that `once` can run: configs drawn from the schema that check-config
accepts never make `once` crash (a traceback, or an exit status other than 0, 1 or 2) on a small dump
generated to fit them. In-process, through the real CLI entry point, on real files."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from segwatch import cli
from segwatch.dump import save_epoch

PANELS = ["image", "gt", "pred", "overlay", "error", "boundary"]


@pytest.fixture
def logging_restored():
    """cli.main configures logging for a process; put the test session's back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("segwatch").level, sys.excepthook)
    yield
    root.handlers[:], level, ours, sys.excepthook = saved
    root.setLevel(level)
    logging.getLogger("segwatch").setLevel(ours)
    logging.captureWarnings(False)


def colours(count: int) -> st.SearchStrategy[list[list[int]]]:
    return st.lists(st.lists(st.integers(0, 255), min_size=3, max_size=3), min_size=1, max_size=count)


@st.composite
def compose_sections(draw: st.DrawFn) -> dict[str, Any]:
    num_classes = draw(st.sampled_from([1, 2, 3, 5, 21, 255, 256, 300]))
    section: dict[str, Any] = {"num_classes": num_classes}
    optional = {
        "ignore_index": st.one_of(st.none(), st.sampled_from([-1, 0, 4, 255, 256, 300, 65535])),
        "layout": st.sampled_from(["pair", "grid"]),
        "panels": st.lists(st.sampled_from(PANELS), min_size=1, max_size=4, unique=True),
        "size": st.tuples(st.integers(1, 40), st.integers(1, 40)).map(list),
        "resize": st.sampled_from(["letterbox", "stretch"]),
        "columns": st.integers(1, 5),
        "max_items": st.integers(1, 4),
        "select": st.sampled_from(["first", "worst", "random"]),
        "seed": st.integers(0, 5),
        "overlay_alpha": st.floats(0.05, 0.95),
        "legend": st.sampled_from(["none", "present", "all"]),
        "palette": st.one_of(st.sampled_from(["voc", "cityscapes", "ade20k"]), colours(6)),
        "class_names": st.lists(
            st.text("abc xyz/", min_size=1, max_size=4),
            min_size=num_classes,
            max_size=num_classes,
            unique=True,
        )
        if num_classes <= 5
        else st.just([]),
        "class_axis": st.sampled_from(["first", "last"]),
        "threshold": st.floats(0.05, 0.95),
        "volume_slices": st.sampled_from([0, 0, 1, 2, 3]),
        "pred_kind": st.sampled_from(["auto", "labels", "scores", "probability"]),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            section[key] = draw(strategy)
    return section


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = {"compose": draw(compose_sections())}
    if draw(st.booleans()):
        config["metrics"] = {
            "enabled": draw(st.booleans()),
            "confusion_matrix": draw(st.booleans()),
            "per_class": draw(st.booleans()),
        }
    if draw(st.booleans()):
        config["limits"] = {"max_pixels": draw(st.sampled_from([1, 50, 10**6]))}
    return config


def fitting_dump(root: Path, compose: dict[str, Any], rng: np.random.Generator, how: str) -> None:
    """Two epochs of arrays that fit the config as a user who read the README would write them."""
    classes = compose["num_classes"]
    volume = compose.get("volume_slices", 0) > 0
    shape = (2, 3, 6, 7) if volume else (2, 6, 7)
    axis = 1 if compose.get("class_axis", "first") == "first" else len(shape)
    kind = compose.get("pred_kind", "auto")
    if kind == "auto":
        kind = how
    for epoch in (1, 2):
        gt = rng.integers(0, classes, size=shape).astype(np.uint16 if classes > 255 else np.uint8)
        if kind == "labels":
            pred: np.ndarray = rng.integers(0, classes, size=shape).astype(
                np.float32 if epoch == 1 else np.int64
            )
        elif kind == "scores":
            pred = rng.standard_normal((*shape[:axis], max(classes, 2), *shape[axis:])).astype(np.float32)
        else:
            pred = rng.random(shape).astype(np.float32)
        panels = compose.get("panels", ["gt", "pred"])
        image = (
            rng.integers(0, 256, size=(*shape, 3)).astype(np.uint8)
            if {"image", "overlay"} & set(panels)
            else None
        )
        save_epoch(root, epoch, gt=gt, pred=pred, image=image, run="r")


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config=configs(), how=st.sampled_from(["labels", "scores", "probability"]), seed=st.integers(0, 2**16))
def test_a_config_check_config_accepts_never_makes_once_crash(
    tmp_path_factory, logging_restored, config, how, seed
):
    workdir = tmp_path_factory.mktemp("case")
    path = workdir / "segwatch.yaml"
    path.write_text(yaml.safe_dump({"watch": {"root": "dumps"}, "tensorboard": {"logdir": "tb"}, **config}))

    if cli.main(["--log-level", "error", "check-config", "--config", str(path)]) != 0:
        event("refused by check-config")
        return  # refused, naming the key: nothing to run
    fitting_dump(workdir / "dumps", config["compose"], np.random.default_rng(seed), how)

    # An exception escaping main is the crash this test is about; it fails the test with its traceback.
    status = cli.main(["--log-level", "error", "once", "--config", str(path)])

    event(f"once exited {status}")
    assert status in (0, 1, 2)
