"""`segwatch demo`, then a real TensorBoard process serving what it wrote over HTTP, pixel for pixel."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from boards import tensorboard
from tensorboard.util import tensor_util

from segwatch import demo

from conftest import decode_png, get, read_event_tensors, read_images

PREFIX = "segwatch"
TAG = f"{PREFIX}/grid"


def run_demo(*flags: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`segwatch demo` into `dumps` and `tb` under `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "segwatch", "demo", *flags, "--dumps", "dumps", "--logdir", "tb"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_logdir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    result = run_demo(cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{len(demo.RUNS) * demo.EPOCHS} logged"), result.stdout
    assert "--samples_per_plugin images=1000" in result.stdout
    assert "http://localhost:6006/#segwatch_viewer" in result.stdout
    again = run_demo(cwd=workdir)
    assert again.returncode == 0 and again.stdout.startswith("0 logged"), again.stdout
    return workdir / "tb"


def test_demo_writes_every_epoch_of_every_run(demo_logdir):
    compose = demo.demo_config(Path("dumps"), Path("tb"))["compose"]
    assert isinstance(compose, dict)
    panels = len(compose["panels"])
    for run in demo.RUNS:
        logged = read_images(demo_logdir / run)
        images = logged[TAG]
        assert sorted(images) == list(range(demo.EPOCHS))
        (first,) = images[0]
        # Every panel of every item is there, with headers above and a legend strip below: taller than the
        # panels alone, and no wider than max_width.
        assert first.shape[0] > demo.SHAPE[0] and panels * 16 < first.shape[1] <= 1536
        assert sorted(logged[f"{PREFIX}/confusion_matrix"]) == list(range(demo.EPOCHS))
        viewer = read_event_tensors(demo_logdir / run)
        for item in range(demo.BATCH):
            assert [step for step, _ in viewer[f"{PREFIX}/viewer/item/{item}"]] == list(range(demo.EPOCHS))


def test_both_runs_show_the_same_input_images_for_the_same_items(demo_logdir):
    # The image panels (first column of the grid) of the two runs are pixel-equal at every epoch: the same
    # validation batch, only the predictions differ.
    grids = {run: read_images(demo_logdir / run)[TAG] for run in demo.RUNS}
    baseline, other = (grids[run] for run in demo.RUNS)
    for epoch in range(demo.EPOCHS):
        a, b = baseline[epoch][0], other[epoch][0]
        assert a.shape == b.shape
        columns = a.shape[1] // 5  # five panels: image | gt | pred | overlay | error
        np.testing.assert_array_equal(a[:, : columns - 4], b[:, : columns - 4])
        assert not np.array_equal(a, b)


@pytest.mark.timeout(180)
def test_live_demo_shows_a_daemon_following_a_training_job(tmp_path):
    started = time.monotonic()
    result = run_demo("--live", cwd=tmp_path, timeout=150)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{len(demo.RUNS) * demo.EPOCHS} epochs written"), result.stdout
    assert "--samples_per_plugin images=1000" in result.stdout
    lines = result.stderr.splitlines()
    dumped = [i for i, line in enumerate(lines) if line.startswith("training |") and "dumped" in line]
    logged = [i for i, line in enumerate(lines) if line.startswith("  daemon |") and " logged " in line]
    assert len(dumped) == len(logged) == len(demo.RUNS) * demo.EPOCHS, result.stderr
    # Followed live: the daemon logs epochs while the job is still writing later ones.
    assert logged[0] < dumped[-1], result.stderr
    assert any("stopped" in line for line in lines[logged[-1] :]), result.stderr
    for run in demo.RUNS:
        assert sorted(read_images(tmp_path / "tb" / run)[TAG]) == list(range(demo.EPOCHS))
    assert time.monotonic() - started < 90


def test_demo_logs_metrics_that_improve(demo_logdir):
    for run in demo.RUNS:
        scalars = {
            tag: {step: float(tensor_util.make_ndarray(proto)) for step, proto in events}
            for tag, events in read_event_tensors(demo_logdir / run).items()
            if not tag.endswith(("grid", "confusion_matrix", "IoU_table")) and "/viewer/" not in tag
        }
        assert {f"{PREFIX}_IoU/{name}" for name in demo.CLASS_NAMES} <= set(scalars)
        miou = scalars[f"{PREFIX}/mIoU"]
        assert sorted(miou) == list(range(demo.EPOCHS))
        assert miou[demo.EPOCHS - 1] > miou[0] + 0.2
        tables = read_event_tensors(demo_logdir / run)[f"{PREFIX}/IoU_table"]
        assert [step for step, _ in tables] == list(range(demo.EPOCHS))
        assert all(name in tables[-1][1].string_val[0].decode() for name in demo.CLASS_NAMES)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python-loader", "rust-loader"])
def test_tensorboard_serves_every_epoch_pixel_equal(demo_logdir, tmp_path, load_fast):
    flags = ("--samples_per_plugin", "images=1000", f"--load_fast={load_fast}")
    with tensorboard(demo_logdir, tmp_path / "tensorboard.log", *flags) as board:
        base = f"{board.url}/data/plugin/images"
        entries: dict[str, list[dict]] = board.until(
            lambda: {
                run: json.loads(get(f"{base}/images?" + urllib.parse.urlencode({"run": run, "tag": TAG})))
                for run in demo.RUNS
            },
            lambda found: all(len(entries) == demo.EPOCHS for entries in found.values()),
            150,
            {},
        )
        assert {run: len(found) for run, found in entries.items()} == {run: demo.EPOCHS for run in demo.RUNS}

        for run, found in entries.items():
            written = read_images(demo_logdir / run)[TAG]
            assert sorted(entry["step"] for entry in found) == list(range(demo.EPOCHS))
            for entry in found:
                served = decode_png(get(f"{base}/individualImage?{entry['query']}"))
                np.testing.assert_array_equal(served, written[entry["step"]][0])
