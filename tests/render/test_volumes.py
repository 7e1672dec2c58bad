"""3-D volumes (compose.volume_slices): evenly spaced slices tiled into one montage item per volume, while the
metrics count every voxel."""

from __future__ import annotations

import numpy as np
import pytest
from tensorboard.util import tensor_util

from segwatch.config import load_config
from segwatch.errors import ArtifactError
from segwatch.render.palettes import build_palette
from segwatch.render.volumes import montage_columns, slice_indices, volume_items
from segwatch.service.once import run_once

from conftest import read_event_tensors, read_images


@pytest.mark.parametrize(
    ("depth", "slices", "expected"),
    [(7, 3, [0, 3, 6]), (10, 4, [0, 3, 6, 9]), (5, 1, [2]), (3, 8, [0, 1, 2]), (1, 4, [0])],
)
def test_slices_are_spread_evenly_first_and_last_included(depth, slices, expected) -> None:
    assert slice_indices(depth, slices) == expected


@pytest.mark.parametrize(("count", "columns"), [(1, 1), (2, 2), (3, 3), (4, 2), (6, 3), (9, 3), (12, 4)])
def test_montage_is_a_full_near_square_grid(count, columns) -> None:
    assert montage_columns(count) == columns


def labelled_volume(depth: int, height: int, width: int) -> np.ndarray:
    """Slice d holds class d % 3, with a bar of d pixels of another class on its first row, so that slices
    can be told apart."""
    volume = np.zeros((depth, height, width), dtype=np.uint8)
    for d in range(depth):
        volume[d] = d % 3
        volume[d, 0, :d] = (d + 1) % 3
    return volume


def test_a_volume_becomes_one_item_tiling_the_chosen_slices() -> None:
    gt = labelled_volume(7, 4, 5)
    image = np.linspace(0, 1, gt.size, dtype=np.float32).reshape(gt.shape)
    (item,) = volume_items(gt, gt.copy(), image, slices=4)
    chosen = slice_indices(7, 4)  # [0, 2, 4, 6], two by two
    assert chosen == [0, 2, 4, 6]
    expected = np.block([[gt[0], gt[2]], [gt[4], gt[6]]])
    np.testing.assert_array_equal(item.gt, expected)
    np.testing.assert_array_equal(item.pred, expected)
    assert item.image is not None and item.image.shape == (8, 10, 3)
    np.testing.assert_array_equal(item.image[4:, 5:, 0], np.rint(image[6] * 255).astype(np.uint8))
    assert item.volume is not None and item.volume[0].shape == (7, 4, 5)


def test_scores_with_a_class_axis_are_argmaxed_per_volume_and_batches_are_cut_to_the_limit() -> None:
    gt = np.stack([labelled_volume(5, 3, 3), labelled_volume(5, 3, 3)])
    scores = np.stack([np.moveaxis(np.eye(3, dtype=np.float32)[volume], -1, 0) for volume in gt])
    assert scores.shape == (2, 3, 5, 3, 3)
    items = volume_items(gt, scores, None, slices=2, limit=1, names={"gt": "gt.npy", "pred": "pred.npy"})
    assert len(items) == 1 and items[0].files["gt"] == "gt.npy volume 0"
    np.testing.assert_array_equal(items[0].pred, np.concatenate([gt[0, 0], gt[0, 4]], axis=1))
    last = np.moveaxis(scores, 1, -1)
    (item,) = volume_items(gt[1], last[1], None, slices=2, class_axis="last")
    np.testing.assert_array_equal(item.volume[1], gt[1])


def test_volumes_of_the_wrong_rank_or_count_name_the_file() -> None:
    with pytest.raises(ArtifactError, match=r"gt\.npy: .*volume \(D, H, W\).*\(4, 5\)"):
        volume_items(
            np.zeros((4, 5), np.uint8), np.zeros((4, 5), np.uint8), None, slices=3, names={"gt": "gt.npy"}
        )
    with pytest.raises(ArtifactError, match=r"gt \(2, 3, 4, 4\) vs pred \(3, 3, 4, 4\)"):
        volume_items(np.zeros((2, 3, 4, 4), np.uint8), np.zeros((3, 3, 4, 4), np.uint8), None, slices=3)


@pytest.mark.timeout(120)
def test_logged_montage_and_metrics_over_every_voxel(tmp_path, write_config) -> None:
    gt = np.stack([labelled_volume(7, 8, 10), labelled_volume(7, 8, 10)])
    pred = gt.copy()
    pred[:, 1] = (pred[:, 1] + 1) % 3  # slice 1 is wrong everywhere and is not among the slices shown
    epoch = tmp_path / "dumps" / "epoch_0"
    epoch.mkdir(parents=True)
    np.save(epoch / "gt.npy", gt)
    np.save(epoch / "pred.npy", pred)
    config = write_config(
        compose={
            "num_classes": 3,
            "panels": ["gt"],
            "size": [8, 30],
            "columns": 1,
            "legend": "none",
            "headers": False,
            "volume_slices": 3,
        }
    )
    tally = run_once(load_config(config))
    assert tally.line().startswith("1 logged"), tally.line()

    (grid,) = read_images(tmp_path / "tb")["segwatch/grid"][0]
    palette = build_palette("voc", 3)
    # The first volume's montage, slices 0, 3 and 6 side by side, is the top-left panel.
    np.testing.assert_array_equal(
        grid[:8, :30], palette[np.concatenate([gt[0, 0], gt[0, 3], gt[0, 6]], axis=1)]
    )
    scalars = {
        tag: float(tensor_util.make_ndarray(events[0][1]))
        for tag, events in read_event_tensors(tmp_path / "tb").items()
        if tag.endswith("pixel_accuracy")
    }
    assert scalars == {"segwatch/pixel_accuracy": pytest.approx(6 / 7)}
