"""`segwatch explain`: what each path maps to, or why nothing, and where each epoch stands."""

from __future__ import annotations

import numpy as np

from segwatch.config import load_config
from segwatch.dump import save_epoch
from segwatch.explain import explain
from segwatch.output.ledger import Ledger


def test_matching_non_matching_and_incomplete_paths(tmp_path, write_config):
    root = tmp_path / "dumps"
    labels = np.zeros((2, 8, 8), dtype=np.uint8)
    for epoch in (1, 2):
        save_epoch(root, epoch, gt=labels, pred=labels, run="exp")
    (root / "exp" / "epoch_3").mkdir()
    np.save(root / "exp" / "epoch_3" / "pred.npy", labels)  # no gt yet
    (root / "exp" / "epoch-4").mkdir()
    np.save(root / "exp" / "epoch-4" / "gt.npy", labels)  # a typo in the directory name
    np.save(root / "exp" / "epoch_2" / "logits.npy", labels)
    Ledger.open(tmp_path / "tb").commit("exp", 1)
    config = load_config(write_config())

    lines = explain(config)
    # Without paths: only the files no pattern matches, sorted and grouped by directory, then the epochs.
    start = lines.index("files matching no pattern (2):")
    assert lines[start + 1] == "  exp/epoch-4/"
    assert lines[start + 2].startswith("    gt.npy: ")
    assert "segment 2 'epoch-4' does not match 'epoch_{epoch}'" in lines[start + 2]
    assert lines[start + 3] == "  exp/epoch_2/"
    assert lines[start + 4].startswith("    logits.npy: ")
    assert lines[start + 5] == "epochs (3):"
    assert not any("gt of run exp" in line for line in lines)
    one = explain(config, [str(root / "exp/epoch_2/gt.npy")])
    assert (
        one[1]
        == f"{root / 'exp/epoch_2/gt.npy'}: gt of run exp, epoch 2 (TensorBoard step 2) via watch.pattern"
    )
    assert "  exp@1: done (in the ledger)" in lines
    assert any(line.startswith("  exp@2: complete: logged next") for line in lines)
    assert "  exp@3: waiting for gt" in lines

    only = explain(config, ["exp/epoch_3/pred.npy"], cwd=tmp_path)
    assert only[1].startswith("exp/epoch_3/pred.npy: pred of run exp, epoch 3")
    assert only[-2:] == ["epochs (1):", "  exp@3: waiting for gt"]
    outside = explain(config, [str(tmp_path / "elsewhere.npy")])
    assert "outside watch.root" in outside[1]


def test_roles_trigger_and_short_files(tmp_path, write_config):
    root = tmp_path / "dumps"
    (root / "val").mkdir(parents=True)
    (root / "r" / "ckpt").mkdir(parents=True)
    labels = np.zeros((1, 4, 4), dtype=np.uint8)
    np.save(root / "val" / "gt.npy", labels)
    np.save(root / "r" / "pred_e1.npy", labels)
    np.save(root / "r" / "pred_e2.npy", labels)
    (root / "r" / "ckpt" / "ckpt-1.index").write_bytes(b"")
    (root / "r" / "ckpt" / "ckpt-2.index").write_bytes(b"")
    whole = (root / "r" / "pred_e2.npy").read_bytes()
    (root / "r" / "pred_e2.npy").write_bytes(whole[:-5])
    np.save(root / "r" / "pred_e3.npy", labels)
    config = load_config(
        write_config(
            watch={
                "roles": {"gt": "val/gt.npy", "pred": "{run}/pred_e{epoch}.npy"},
                "trigger": "{run}/ckpt/ckpt-{epoch}.index",
            }
        )
    )
    lines = explain(config)
    assert f"fixed gt: {root / 'val/gt.npy'} (present, shared by every epoch)" in lines
    assert "files matching no pattern: none" in lines
    trigger = explain(config, [str(root / "r" / "ckpt" / "ckpt-1.index")])
    assert "the trigger of run r, epoch 1" in trigger[2]
    assert any(line.startswith("  r@1: complete: logged next (its trigger is present)") for line in lines)
    assert any(line.startswith("  r@2: waiting: ") and "still being written" in line for line in lines)
    assert "  r@3: waiting for the trigger ({run}/ckpt/ckpt-{epoch}.index)" in lines
