"""Rendering is a pure function: items and the epoch plan in, summaries out. No files, no config, no state."""

from __future__ import annotations

import numpy as np

from segwatch.config import config_from_mapping
from segwatch.dump import save_epoch
from segwatch.plan import build_plan
from segwatch.render.items import Item
from segwatch.render.pipeline import ViewerLayers, epoch_items, render_epoch
from segwatch.service.discovery import discover
from segwatch.service.processor import render_artifact

from conftest import blob_labels


def payloads(summaries) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {summary.tag: summary.payload for summary in summaries}


def test_items_in_memory_render_as_the_same_files_do(tmp_path) -> None:
    rng = np.random.default_rng(3)
    gt = np.stack([blob_labels(rng, (24, 32), 4) for _ in range(3)]).astype(np.uint8)
    pred = np.where(rng.random(gt.shape) < 0.8, gt, 1).astype(np.uint8)
    save_epoch(tmp_path / "dumps", 7, gt=gt, pred=pred, run="r")
    config = config_from_mapping(
        {
            "watch": {"root": str(tmp_path / "dumps")},
            "tensorboard": {"logdir": str(tmp_path / "tb")},
            "compose": {"num_classes": 4, "select": "worst", "max_items": 2},
        },
        env={},
    )
    plan = build_plan(config)
    (artifact,) = discover(plan)[0]

    from_files = render_artifact(plan, artifact)
    items = [Item(gt[i], pred[i], None) for i in range(3)]
    in_memory = render_epoch(items, plan.epoch, plan.viewer, source="r@7", step=7)
    again = render_epoch(items, plan.epoch, plan.viewer, source="r@7", step=7)

    assert payloads(in_memory.summaries) == payloads(from_files.summaries)
    assert payloads(again.summaries) == payloads(in_memory.summaries)  # nothing remembered between calls
    assert "segwatch/worst" in payloads(in_memory.summaries)
    assert set(in_memory.layers) == set(from_files.layers)


def test_in_memory_arrays_become_items_as_loaded_ones_do() -> None:
    config = config_from_mapping(
        {"watch": {"root": "/d"}, "tensorboard": {"logdir": "/t"}, "compose": {"max_items": 2}},
        env={},
    )
    plan = build_plan(config)
    gt = np.zeros((20, 8, 8), dtype=np.uint8)
    arrays = {"gt": [gt], "pred": [gt]}
    names = {"gt": ("gt.npy",), "pred": ("pred.npy",)}
    assert len(epoch_items(arrays, names, plan.epoch)) == 16  # the viewer's 16 items, more than max_items
    assert len(epoch_items(arrays, names, plan.epoch, every=True)) == 20


def test_viewer_layers_are_remembered_only_once_their_epoch_is_committed() -> None:
    memory = ViewerLayers()
    memory.rendered("r", 1, {0: {}})
    assert memory.stored("r") == {}
    memory.rendered("r", 2, {1: {}})
    memory.committed("r", 2)
    assert memory.stored("r") == {1: {}}
    memory.committed("r", 1)  # an older epoch's pending layers were dropped with the newer commit
    assert memory.stored("r") == {1: {}}


def _read_bytes() -> int:
    """Bytes this process has read through read system calls so far (/proc/self/io rchar)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def test_the_picture_comes_from_the_count_pass_with_the_same_pixels(tmp_path) -> None:
    """With metrics on, the panels' pixels are copied out by the count pass: the maps (int64, letterboxed,
    one file per item) are read once, and the picture is the one a render without a count pass draws."""
    rng = np.random.default_rng(8)
    shapes = [(300, 420), (410, 290), (333, 333)]
    gts, preds = [], []
    for shape in shapes:
        gt = blob_labels(rng, shape, 5).astype(np.int64)
        gt[rng.random(shape) < 0.02] = 255
        gts.append(gt)
        preds.append(np.where(rng.random(shape) < 0.9, gt % 255, 2).astype(np.int64))
    save_epoch(tmp_path / "dumps", 3, run="r", gt=gts, pred=preds)
    size = sum(m.nbytes for m in gts + preds)

    def rendered(metrics: bool):  # type: ignore[no-untyped-def]
        config = config_from_mapping(
            {
                "watch": {"root": str(tmp_path / "dumps")},
                "tensorboard": {"logdir": str(tmp_path / "tb")},
                "compose": {"num_classes": 5, "size": [96, 96], "columns": 3, "resize": "letterbox"},
                "metrics": {"enabled": metrics},
                "viewer": {"enabled": False},
            },
            env={},
        )
        plan = build_plan(config)
        (artifact,) = discover(plan)[0]
        before = _read_bytes()
        result = render_artifact(plan, artifact)
        return payloads(result.summaries), _read_bytes() - before

    counted, counted_bytes = rendered(metrics=True)
    plain, _ = rendered(metrics=False)
    assert counted["segwatch/grid"] == plain["segwatch/grid"]
    # One read of every map (and the headers); composing from the files again would read most of it twice.
    assert size <= counted_bytes < 1.25 * size, (counted_bytes, size)
