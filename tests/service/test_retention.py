"""Dump retention (`watch.retention`): logged epochs' dump files are removed, and nothing else ever is."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from segwatch.config import load_config
from segwatch.dump import save_epoch
from segwatch.intake.layout import Artifact, DumpLayout
from segwatch.output.ledger import Ledger
from segwatch.service.health import Health
from segwatch.service.once import run_once
from segwatch.service.processor import close_processor, open_processor
from segwatch.service.retention import Retention, attach_retention

from conftest import raw_record_counts

SMALL = {"layout": "pair", "size": [8, 8], "panels": ["gt", "pred"], "legend": "none"}


def write_epochs(root: Path, epochs: range | list[int], run: str = "exp", age: float = 60.0) -> None:
    """Epochs written `age` seconds ago: settled, as the daemon's readiness would have waited for."""
    rng = np.random.default_rng(3)
    for epoch in epochs:
        labels = rng.integers(0, 5, size=(2, 8, 8), dtype=np.uint8)
        directory = save_epoch(root, epoch, gt=labels, pred=labels.astype(np.int64), run=run)
        for path in directory.iterdir():
            os.utime(path, (time.time() - age, time.time() - age))


def dump_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def config_with(write_config, **watch: object):
    return load_config(write_config(watch=watch, compose=SMALL, metrics={"enabled": False}))


def steps_per_tag(run_dir: Path) -> dict[str, list[int]]:
    counts = raw_record_counts(run_dir)
    steps: dict[str, list[int]] = {}
    for (tag, step), count in sorted(counts.items()):
        steps.setdefault(tag, []).extend([step] * count)
    return steps


def every_tag_has(run_dir: Path, epochs: list[int]) -> bool:
    """Each of the run's tags, the image pairs among them, holds every epoch exactly once."""
    steps = steps_per_tag(run_dir)
    return "segwatch/pairs" in steps and all(found == epochs for found in steps.values())


def test_zero_removes_each_epoch_once_logged_and_every_epoch_is_in_tensorboard_once(tmp_path, write_config):
    root = tmp_path / "dumps"
    write_epochs(root, range(1, 4))
    config = config_with(write_config, retention=0)
    tally = run_once(config)
    assert tally.line().startswith("3 logged")
    assert dump_files(root) == []
    # The epoch directories went too (they held nothing else); the run directory stays for the producer.
    assert sorted(p.name for p in root.iterdir()) == ["exp"]
    assert list((root / "exp").iterdir()) == []
    assert every_tag_has(tmp_path / "tb" / "exp", [1, 2, 3])
    assert Ledger.open(tmp_path / "tb").runs["exp"].done == {1, 2, 3}


def test_n_keeps_the_last_n_logged_epochs_of_each_run(tmp_path, write_config):
    root = tmp_path / "dumps"
    write_epochs(root, range(1, 6), run="a")
    write_epochs(root, [1], run="b")
    run_once(config_with(write_config, retention=2))
    assert dump_files(root) == [
        "a/epoch_4/gt.npy",
        "a/epoch_4/pred.npy",
        "a/epoch_5/gt.npy",
        "a/epoch_5/pred.npy",
        "b/epoch_1/gt.npy",
        "b/epoch_1/pred.npy",
    ]
    # A new epoch pushes the oldest kept one out.
    write_epochs(root, [6], run="a")
    run_once(config_with(write_config, retention=2))
    assert [f for f in dump_files(root) if f.startswith("a/")] == [
        "a/epoch_5/gt.npy",
        "a/epoch_5/pred.npy",
        "a/epoch_6/gt.npy",
        "a/epoch_6/pred.npy",
    ]


def test_off_by_default_removes_nothing(tmp_path, write_config):
    root = tmp_path / "dumps"
    write_epochs(root, range(1, 3))
    config = config_with(write_config)
    assert config.watch.retention is None
    run_once(config)
    assert len(dump_files(root)) == 4


def test_the_fixed_ground_truth_triggers_and_unread_roles_are_never_removed(tmp_path, write_config):
    root = tmp_path / "dumps"
    (root / "exp").mkdir(parents=True)
    np.save(root / "val_gt.npy", np.zeros((2, 8, 8), dtype=np.uint8))
    for epoch in (1, 2):
        np.save(root / "exp" / f"pred_{epoch}.npy", np.ones((2, 8, 8), dtype=np.int64))
        # An image segwatch does not read (no panel shows it), and a checkpoint that triggers the epoch.
        np.save(root / "exp" / f"image_{epoch}.npy", np.zeros((2, 8, 8, 3), dtype=np.uint8))
        (root / "exp" / f"ckpt-{epoch}.index").write_bytes(b"checkpoint")
    for path in root.rglob("*"):
        os.utime(path, (time.time() - 60, time.time() - 60))
    config = config_with(
        write_config,
        fixed_gt="val_gt.npy",
        roles={"pred": "{run}/pred_{epoch}.npy", "image": "{run}/image_{epoch}.npy"},
        trigger="{run}/ckpt-{epoch}.index",
        retention=0,
    )
    assert run_once(config).line().startswith("2 logged")
    assert dump_files(root) == [
        "exp/ckpt-1.index",
        "exp/ckpt-2.index",
        "exp/image_1.npy",
        "exp/image_2.npy",
        "val_gt.npy",
    ]


def test_a_set_aside_epoch_keeps_its_files(tmp_path, write_config):
    root = tmp_path / "dumps"
    write_epochs(root, [1, 3])
    (root / "exp" / "epoch_2").mkdir()
    (root / "exp" / "epoch_2" / "gt.npy").write_bytes(b"not an npy file at all, but long enough" * 4)
    (root / "exp" / "epoch_2" / "pred.npy").write_bytes(b"neither" * 20)
    for path in (root / "exp" / "epoch_2").iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))
    tally = run_once(config_with(write_config, retention=0))
    assert tally.line().startswith("2 logged, 1 set aside")
    assert dump_files(root) == ["exp/epoch_2/gt.npy", "exp/epoch_2/pred.npy"]


def test_a_crash_between_commit_and_removal_is_finished_at_the_next_start(tmp_path, write_config):
    root = tmp_path / "dumps"
    write_epochs(root, range(1, 4))
    # Logged and committed by a process that died before removing anything.
    run_once(config_with(write_config))
    assert len(dump_files(root)) == 6
    write_epochs(root, [4])  # not logged yet: the sweep must leave it for the processor
    config = config_with(write_config, retention=0)
    processor = open_processor(config)
    retention = attach_retention(config, processor)
    assert retention is not None
    assert dump_files(root) == ["exp/epoch_4/gt.npy", "exp/epoch_4/pred.npy"]
    assert (retention.removed_files, retention.removed_bytes) == (6, sum_sizes(6))
    close_processor(processor)
    run_once(config)
    assert dump_files(root) == []
    assert every_tag_has(tmp_path / "tb" / "exp", [1, 2, 3, 4])


def sum_sizes(count: int) -> int:
    # gt: (2, 8, 8) uint8 = 128 B + 128 B header; pred int64 = 1024 B + 128 B; three epochs of each pair.
    return count // 2 * (256 + 1152)


def retention_over(root: Path, ledger: Ledger, *, keep: int, settle: float, clock=time.time) -> Retention:
    return Retention(
        keep=keep,
        root=root,
        layout=DumpLayout(required_roles=("gt", "pred")),
        roles=("gt", "pred"),
        fixed_files=(),
        ledger=ledger,
        settle=settle,
        clock=clock,
    )


def artifact(root: Path, epoch: int, run: str = "exp") -> Artifact:
    directory = root / run / f"epoch_{epoch}"
    return Artifact(run, epoch, {"gt": (str(directory / "gt.npy"),), "pred": (str(directory / "pred.npy"),)})


def test_files_changed_within_settle_wait_and_files_rewritten_after_logging_stay(tmp_path, caplog):
    root = tmp_path / "dumps"
    write_epochs(root, [1, 2], age=0)
    ledger = Ledger.open(tmp_path / "tb")
    now = [time.time()]
    retention = retention_over(root, ledger, keep=0, settle=60.0, clock=lambda: now[0])
    ledger.commit("exp", 1)
    retention.after_commit(artifact(root, 1))
    # Written a moment ago: could still be in the producer's hands, so it waits.
    assert len(dump_files(root)) == 4
    now[0] += 61
    ledger.commit("exp", 2)
    retention.after_commit(artifact(root, 2))
    assert dump_files(root) == []

    write_epochs(root, [3], age=0)
    now[0] = time.time()
    ledger.commit("exp", 3)
    retention.after_commit(artifact(root, 3))
    assert len(dump_files(root)) == 2
    # Replaced after it was logged: that is not the file segwatch logged.
    np.save(root / "exp" / "epoch_3" / "gt.npy", np.zeros((2, 8, 8), dtype=np.uint8))
    now[0] += 61
    with caplog.at_level(logging.WARNING, logger="segwatch.service.retention"):
        write_epochs(root, [4], age=120)
        ledger.commit("exp", 4)
        retention.after_commit(artifact(root, 4))
    assert dump_files(root) == ["exp/epoch_3/gt.npy"]
    assert (
        "run=exp epoch=3 kept" in caplog.text and "replaced or rewritten since it was logged" in caplog.text
    )


def test_nothing_outside_the_root_is_removed_through_a_symlinked_directory(tmp_path):
    root, outside = tmp_path / "dumps", tmp_path / "elsewhere"
    write_epochs(outside, [1], run="exp")
    root.mkdir()
    (root / "exp").symlink_to(outside / "exp", target_is_directory=True)
    ledger = Ledger.open(tmp_path / "tb")
    ledger.commit("exp", 1)
    retention = retention_over(root, ledger, keep=0, settle=0.0)
    retention.sweep()
    retention.after_commit(artifact(root, 1))
    assert dump_files(outside) == ["exp/epoch_1/gt.npy", "exp/epoch_1/pred.npy"]
    assert retention.removed_files == 0


def test_removals_show_in_the_metrics(tmp_path):
    health = Health()
    health.record_removed("exp", 3, 2, 1408)
    health.record_removed("exp", 4, 2, 1408)
    text = health.metrics().body.decode()
    assert "segwatch_dump_files_removed_total 4.0" in text
    assert "segwatch_dump_bytes_removed_total 2816.0" in text


@pytest.mark.parametrize("value", [-1, True, "3", 1.5])
def test_a_bad_retention_value_names_the_key(write_config, value):
    from segwatch.errors import ConfigError

    with pytest.raises(ConfigError, match=r"watch\.retention: expected null \(keep every dump file\)"):
        load_config(write_config(watch={"retention": value}))
