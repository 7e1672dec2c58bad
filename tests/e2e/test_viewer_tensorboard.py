"""The viewer's routes in a real TensorBoard process, for both of its loaders, with no flag from the user:
every epoch of every run is listed, and every blob decodes to exactly the resized label maps and images."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import yaml
from boards import tensorboard
from PIL import Image

from segwatch.dump import save_epoch
from segwatch.render.compose import resize_labels_nearest

from conftest import blob_labels, get

SHAPE = (300, 1100)  # stored at 279 x 1024 by viewer.max_side's default
STORED = (279, 1024)
EPOCHS = {"a": 12, "b": 11}  # more than the 10 steps TensorBoard keeps of a blob sequence by default
ITEMS = 2


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[Path, dict[str, dict[int, np.ndarray]], np.ndarray, np.ndarray]:
    root = tmp_path_factory.mktemp("viewer")
    rng = np.random.default_rng(7)
    gt = blob_labels(rng, (ITEMS, *SHAPE), 6, cell=50)
    gt[:, :20, :40] = 255
    image = rng.integers(0, 256, size=(ITEMS, *SHAPE, 3), dtype=np.uint8)
    preds: dict[str, dict[int, np.ndarray]] = {}
    for run, epochs in EPOCHS.items():
        for epoch in range(epochs):
            pred = blob_labels(rng, (ITEMS, *SHAPE), 6, cell=50)
            preds.setdefault(run, {})[epoch] = pred
            save_epoch(root / "dumps", epoch, gt=gt, pred=pred, image=image, run=run)
    config = {
        "watch": {"root": str(root / "dumps"), "pattern": "{run}/epoch_{epoch}/{role}.npy"},
        "tensorboard": {"logdir": str(root / "tb")},
        "compose": {
            "num_classes": 6,
            "palette": "voc",
            "ignore_index": 255,
            "max_items": 1,
            "panels": ["image", "gt", "pred"],
        },
        "metrics": {"enabled": False},
    }
    (root / "segwatch.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "segwatch", "once", "--config", str(root / "segwatch.yaml")],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return root / "tb", preds, gt, image


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as picture:
        return np.asarray(picture)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python-loader", "rust-loader"])
def test_every_epoch_is_served_and_decodes_to_the_resized_dump(logged, load_fast, tmp_path):
    logdir, preds, gt, image = logged
    # No --samples_per_plugin: the viewer's loader must keep every epoch by itself.
    flags = (f"--load_fast={load_fast}", "--reload_interval", "1")
    with tensorboard(logdir, tmp_path / "tensorboard.log", *flags) as board:
        base = f"{board.url}/data/plugin/segwatch_viewer"
        cache: dict[str, np.ndarray] = {}

        def decoded(key: str) -> np.ndarray:
            if key not in cache:
                cache[key] = pixels(get(f"{base}/blob?" + urllib.parse.urlencode({"key": key})))
            return cache[key]

        wanted = {run: list(range(n)) for run, n in EPOCHS.items()}
        runs: list[dict] = board.until(
            lambda: json.loads(get(f"{base}/runs"))["runs"],
            lambda found: {entry["run"]: entry["steps"] for entry in found} == wanted,
            90,
            [],
        )
        assert {entry["run"]: entry["steps"] for entry in runs} == wanted
        assert all(entry["items"] == list(range(ITEMS)) and entry["prefix"] == "segwatch" for entry in runs)
        assert runs[0]["classes"]["encoding"] == "gray8" and runs[0]["classes"]["ignore_code"] == 255

        expected_gt = [resize_labels_nearest(gt[i], STORED) for i in range(ITEMS)]
        expected_image = [resize_labels_nearest(image[i], STORED) for i in range(ITEMS)]
        for run, epochs in EPOCHS.items():
            for step in range(epochs):
                epoch = json.loads(
                    get(
                        f"{base}/epoch?"
                        + urllib.parse.urlencode({"run": run, "prefix": "segwatch", "step": step})
                    )
                )
                assert [row["id"] for row in epoch["items"]] == list(range(ITEMS))
                for item in range(ITEMS):
                    query = urllib.parse.urlencode(
                        {"run": run, "prefix": "segwatch", "step": step, "item": item}
                    )
                    served = json.loads(get(f"{base}/item?{query}"))
                    # The fixed ground truth and image were stored once, at the first epoch.
                    assert served["info"]["gt_step"] == 0 and served["info"]["image_step"] == 0
                    layers = {name: decoded(key) for name, key in served["blobs"].items()}
                    np.testing.assert_array_equal(
                        layers["pred"], resize_labels_nearest(preds[run][step][item], STORED)
                    )
                    np.testing.assert_array_equal(layers["gt"], expected_gt[item])
                    np.testing.assert_array_equal(layers["image"], expected_image[item])


@pytest.mark.timeout(300)
def test_the_viewer_joins_a_tensorboard_in_another_environment_with_a_no_deps_install(logged, tmp_path):
    """The README's way: a virtualenv holding only TensorBoard gets the segwatch wheel with --no-deps."""
    logdir = logged[0]
    project = Path(__file__).resolve().parents[2]
    quiet = ["--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            *quiet,
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(project),
        ],
        check=True,
        timeout=240,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("segwatch-*.whl")
    env = tmp_path / "tensorboard-env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=60)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", *quiet]
    subprocess.run([*pip, "tensorboard"], check=True, timeout=240, capture_output=True)
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, timeout=120, capture_output=True)
    with tensorboard(logdir, tmp_path / "tensorboard.log", binary=env / "bin" / "tensorboard") as board:
        base = f"{board.url}/data/plugin/segwatch_viewer"
        wanted = {run: list(range(n)) for run, n in EPOCHS.items()}
        steps: dict[str, list[int]] = board.until(
            lambda: {entry["run"]: entry["steps"] for entry in json.loads(get(f"{base}/runs"))["runs"]},
            lambda found: found == wanted,
            90,
            {},
        )
        assert steps == wanted
        # The wheel carries the frontend's modules.
        assert b"export async function render" in get(f"{base}/static/index.js")
        assert b"segwatch_viewer" in get(f"{board.url}/data/plugins_listing")


def test_the_plugin_imports_neither_tensorflow_nor_the_daemon() -> None:
    code = (
        "import sys, segwatch.viewer.loader, segwatch.viewer.plugin;"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow' or m in "
        "('segwatch.render.pipeline', 'segwatch.render.viewer', 'segwatch.output.sink', 'segwatch.render.compose'));"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
