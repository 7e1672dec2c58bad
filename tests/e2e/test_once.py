"""`segwatch once` as a real process over a real dump, read back with TensorBoard's own reader."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from segwatch.dump import save_epoch
from segwatch.render.figures import TARGET_WIDTH

from conftest import blob_labels, raw_record_counts, read_images

PALETTE = [[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200], [250, 250, 0]]
IGNORE_RGB_CHECKED_SEPARATELY = 255


def segwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def dump(tmp_path):
    rng = np.random.default_rng(7)
    truth = {}
    for run in ("alpha", "beta"):
        for epoch in (1, 2, 5):
            gt = blob_labels(rng, (2, 24, 32), 5)
            gt[:, :3, :3] = 255  # ignore pixels in one corner
            pred = blob_labels(rng, (2, 24, 32), 5).astype(np.int64)
            save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=pred, run=run)
            truth[(run, epoch)] = (gt, pred)
    return truth


def test_once_logs_every_epoch_pixel_exact_and_only_once(tmp_path, dump, write_config):
    config = write_config(
        compose={
            "layout": "pair",
            "size": [24, 32],
            "resize": "stretch",
            "palette": PALETTE,
            "panels": ["gt", "pred"],
            "legend": "none",
            "headers": False,
        },
        metrics={"enabled": False},
    )
    first = segwatch("once", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("6 logged")

    palette = np.array(PALETTE, dtype=np.uint8)
    for run in ("alpha", "beta"):
        images = read_images(tmp_path / "tb" / run)
        assert sorted(images) == ["segwatch/pairs"]
        assert sorted(images["segwatch/pairs"]) == [1, 2, 5]
        for epoch, decoded in images["segwatch/pairs"].items():
            gt, pred = dump[(run, epoch)]
            assert len(decoded) == 2
            for item, image in enumerate(decoded):
                gutter = image.shape[1] - 64
                assert gutter > 0
                left, right = image[:, :32], image[:, 32 + gutter :]
                valid = gt[item] != 255
                np.testing.assert_array_equal(left[valid], palette[gt[item][valid]])
                ignore_colours = {tuple(c) for c in left[~valid]}
                assert len(ignore_colours) == 1 and not ignore_colours & {tuple(c) for c in PALETTE}
                np.testing.assert_array_equal(right, palette[pred[item]])
                assert len({tuple(c) for c in image[:, 32 : 32 + gutter].reshape(-1, 3)}) == 1

    before = {run: raw_record_counts(tmp_path / "tb" / run) for run in ("alpha", "beta")}
    assert all(count == 1 for counts in before.values() for count in counts.values())
    second = segwatch("once", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("0 logged")
    assert "6 already done" in second.stdout
    assert {run: raw_record_counts(tmp_path / "tb" / run) for run in ("alpha", "beta")} == before


def test_grid_holds_every_item_in_palette_colours(tmp_path, write_config):
    rng = np.random.default_rng(3)
    gt = blob_labels(rng, (5, 40, 30), 5)
    save_epoch(tmp_path / "dumps", 0, gt=gt, pred=gt.astype(np.int32))
    config = write_config(
        compose={
            "layout": "grid",
            "size": [20, 15],
            "columns": 2,
            "palette": PALETTE,
            "legend": "none",
            "headers": False,
        }
    )
    result = segwatch("once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    (image,) = read_images(tmp_path / "tb")["segwatch/grid"][0]
    # 5 items in 2 columns: 3 rows of cells, each cell two 20x15 panels plus gutters.
    assert 3 * 20 < image.shape[0] < 3 * 20 + 20 and 2 * 2 * 15 < image.shape[1] < 2 * 2 * 15 + 20
    label_colours = {tuple(c) for c in PALETTE}
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert len(colours - label_colours) <= 3  # pad, gutter and ignore are the only other colours


def test_bad_artifact_is_set_aside_with_one_line_and_others_logged(tmp_path, write_config):
    rng = np.random.default_rng(1)
    for epoch in range(3):
        gt = blob_labels(rng, (16, 16), 5)
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=gt, run="r")
    bad = tmp_path / "dumps" / "r" / "epoch_1" / "pred.npy"
    np.save(bad, np.array([{"not": "an array"}], dtype=object), allow_pickle=True)
    config = write_config()
    result = segwatch("once", "--config", str(config))
    assert result.returncode == 1
    assert result.stdout.startswith("2 logged, 1 set aside")
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and str(bad) in errors[0], result.stderr
    assert sorted(read_images(tmp_path / "tb" / "r")["segwatch/grid"]) == [0, 2]
    # Unchanged bad files are not retried and reported again.
    again = segwatch("once", "--config", str(config))
    assert again.returncode == 0 and " ERROR " not in again.stderr


def test_bad_config_exits_2_naming_the_key(tmp_path, write_config):
    config = write_config(compose={"size": [256]})
    result = segwatch("once", "--config", str(config))
    assert result.returncode == 2
    assert "compose.size: expected two positive integers, got [256]" in result.stderr


def test_metrics_every_epoch_over_every_item_read_back_without_nan(tmp_path, write_config):
    """Metrics cover every item (not only the one shown), at the image's step, and never hold NaN."""
    from tensorboard.util import tensor_util

    from segwatch.metrics.confusion import confusion_matrix, scores

    from conftest import read_event_tensors

    rng = np.random.default_rng(11)
    truth = {}
    for epoch in (3, 4):
        gt = blob_labels(rng, (3, 16, 20), 4)  # class 4 never appears: its IoU is undefined
        gt[:, 0, :] = 255
        pred = blob_labels(rng, (3, 16, 20), 4)
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=pred)
        truth[epoch] = scores(confusion_matrix(gt, pred, 5, 255))
    config = write_config(
        compose={
            "max_items": 1,
            "panels": ["gt", "pred", "error", "boundary"],
            "class_names": ["sky", "road", "car", "tree", "boat"],
        }
    )
    result = segwatch("once", "--config", str(config))
    assert result.returncode == 0, result.stderr

    tensors = read_event_tensors(tmp_path / "tb")
    for tag in ("segwatch/grid", "segwatch/confusion_matrix", "segwatch/IoU_table", "segwatch/mIoU"):
        assert [step for step, _ in tensors[tag]] == [3, 4], tag
    assert "segwatch_IoU/boat" not in tensors and "segwatch/dice" not in tensors
    for epoch, expected in truth.items():
        values = {
            tag: float(tensor_util.make_ndarray(proto))
            for tag, events in tensors.items()
            for step, proto in events
            if step == epoch and proto.dtype == 1  # DT_FLOAT: the scalars
        }
        assert not any(math.isnan(v) for v in values.values())
        assert values["segwatch/mIoU"] == pytest.approx(expected.mean_iou, abs=1e-6)
        assert values["segwatch/pixel_accuracy"] == pytest.approx(expected.pixel_accuracy, abs=1e-6)
        assert values["segwatch/mean_class_accuracy"] == pytest.approx(expected.mean_class_accuracy, abs=1e-6)
        assert values["segwatch_IoU/car"] == pytest.approx(expected.iou[2], abs=1e-6)
        (table,) = [p for step, p in tensors["segwatch/IoU_table"] if step == epoch]
        text = tensor_util.make_ndarray(table).item().decode()
        assert "| boat | — | — | 0 |" in text and f"{expected.iou[1]:.4f}" in text
    images = read_images(tmp_path / "tb")
    (heatmap,) = images["segwatch/confusion_matrix"][3]
    assert heatmap.shape[1] >= TARGET_WIDTH - 4  # wider than any card: TensorBoard never scales it up
    (grid,) = images["segwatch/grid"][3]
    assert grid.shape[1] == 4 * 256 + 3 * 2  # one item (max_items 1), four panels, RGB
