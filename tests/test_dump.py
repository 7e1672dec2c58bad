import numpy as np
import pytest

from segwatch.dump import save_epoch
from segwatch.intake.layout import DumpLayout


def test_save_epoch_writes_the_default_layout_atomically(tmp_path):
    gt = np.zeros((2, 4, 4), np.uint8)
    target = save_epoch(tmp_path, 3, gt=gt, pred=gt + 1, image=np.ones((2, 4, 4, 3), np.float32), run="r")
    assert target == tmp_path / "r" / "epoch_3"
    assert sorted(p.name for p in target.iterdir()) == ["gt.npy", "image.npy", "pred.npy"]
    np.testing.assert_array_equal(np.load(target / "pred.npy"), gt + 1)
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["epoch_3"]  # no staging directory left behind
    layout = DumpLayout()
    assert {
        key.role for p in target.iterdir() for key in layout.keys(p.relative_to(tmp_path).as_posix())
    } == {
        "gt",
        "pred",
        "image",
    }


def test_items_of_different_shapes_get_one_file_each(tmp_path):
    target = save_epoch(
        tmp_path,
        0,
        gt=[np.zeros((3, 5), np.uint8), np.zeros((7, 2), np.uint8)],
        pred=[np.zeros((3, 5), np.int64), np.zeros((7, 2), np.int64)],
    )
    assert target == tmp_path / "epoch_0"
    assert sorted(p.name for p in target.iterdir()) == ["gt_0.npy", "gt_1.npy", "pred_0.npy", "pred_1.npy"]


def test_a_resumed_job_dumping_an_epoch_again_replaces_it_whole_without_raising(tmp_path):
    old, new = np.zeros((4, 4), np.uint8), np.ones((2, 3), np.uint8)
    save_epoch(tmp_path, 1, gt=[old, old], pred=[old, old], image=[old, old])
    target = save_epoch(tmp_path, 1, gt=new, pred=new)
    # Nothing of the old epoch is left beside the new one, and nothing hidden is left behind.
    assert sorted(p.name for p in target.iterdir()) == ["gt.npy", "pred.npy"]
    np.testing.assert_array_equal(np.load(target / "gt.npy"), new)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_1"]


def test_overwrite_false_keeps_the_existing_epoch(tmp_path):
    old, new = np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)
    save_epoch(tmp_path, 1, gt=old, pred=old)
    target = save_epoch(tmp_path, 1, gt=new, pred=new, overwrite=False)
    np.testing.assert_array_equal(np.load(target / "pred.npy"), old)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_1"]


@pytest.mark.parametrize("run", ["", ".hidden", "a/b"])
def test_run_names_are_one_visible_segment(tmp_path, run):
    with pytest.raises(ValueError, match="run"):
        save_epoch(tmp_path, 0, gt=np.zeros((2, 2), np.uint8), pred=np.zeros((2, 2), np.uint8), run=run)
