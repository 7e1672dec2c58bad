"""What a user sees in TensorBoard's own tabs, measured in a real headless Chromium over a real TensorBoard:
legend text at least 9 px tall on screen in the Images and Time Series tabs at 1600x1200 (the default
config, and a 19-class Cityscapes epoch with every panel), and the landing page's cards in a useful order."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from segwatch.render.indexspace import IndexSpace
from segwatch.render.palettes import CLASS_NAMES, build_palette

from conftest import get, read_event_tensors

sys.path.insert(0, str(Path(__file__).parents[1] / "screenshots"))

import browser
import legibility
import measure
import scenes

pytestmark = pytest.mark.skipif(
    browser.chromium_missing() is not None, reason=str(browser.chromium_missing())
)

MIN_GLYPH_PX = 9


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("screens")
    for name in scenes.SCENES:
        config = scenes.write_scene(name, root)
        result = subprocess.run(
            [sys.executable, "-m", "segwatch", "once", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    return root / "tb"


@pytest.fixture(scope="module")
def page(logged: Path):
    """One TensorBoard and one browser for the module's tests."""
    with browser.tensorboard(logged) as url, browser.chromium() as driver:
        yield url, driver


def grid_sizes(logdir: Path) -> dict[str, tuple[int, int]]:
    sizes = {}
    for name in scenes.SCENES:
        proto = read_event_tensors(logdir / name)["segwatch/grid"][-1][1]
        sizes[name] = (int(proto.string_val[0]), int(proto.string_val[1]))
    return sizes


def legend_colours(name: str) -> tuple[np.ndarray, np.ndarray]:
    palette, classes = ("voc", 21) if name == "default-config" else ("cityscapes", 19)
    space = IndexSpace(classes, 255, build_palette(palette, classes))
    full = space.full_palette()
    return full[space.backdrop_slot], full[space.ink_slot]


@pytest.mark.timeout(300)
def test_legend_glyphs_are_at_least_9_px_tall_on_screen_in_both_tabs(
    logged: Path, page, tmp_path: Path
) -> None:
    url, driver = page
    shots = measure.grid_shots(driver, url, grid_sizes(logged), tmp_path)
    sizes = grid_sizes(logged)
    for (tab, name), shown in shots.items():
        assert shown is not None, f"{name}'s grid is not on the first page of the {tab} tab"
        shot, box = shown
        backdrop, ink = legend_colours(name)
        picture = legibility.crop(shot, box, sizes[name])
        heights = legibility.glyph_heights(legibility.legend_rows(picture, backdrop), backdrop, ink)
        assert len(heights) >= 10, f"{tab}/{name}: legend glyphs not found ({heights})"
        tall = legibility.tall_glyph_height(heights)
        assert tall >= MIN_GLYPH_PX, f"{tab}/{name}: legend glyphs {tall} px tall on screen ({heights})"


@pytest.mark.timeout(180)
def test_time_series_opens_on_the_images_and_headline_scalars(page) -> None:
    url, driver = page
    driver.get(f"{url}/#timeseries")
    deadline = time.monotonic() + 60
    while True:
        titles = driver.execute_script(
            "return Array.from(document.querySelectorAll('card-view .tag-path[title], card-view .tag[title]'))"
            ".map(t => t.getAttribute('title'));"
        )
        groups = driver.execute_script(
            "return Array.from(document.querySelectorAll('.group-title')).map(g => g.innerText.trim());"
        )
        groups = [re.sub(r"\s*\d+ cards?$", "", g) for g in groups]
        if ("segwatch_IoU" in groups and len(titles) >= 7) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Cards in the order the page shows them: one per tag and run for images, one per tag for scalars.
    first_group = [t for t in titles if t.startswith("segwatch/")]
    assert first_group[:4] == ["segwatch/confusion_matrix"] * 2 + ["segwatch/grid"] * 2, titles
    assert first_group[4:] == ["segwatch/mIoU", "segwatch/mean_class_accuracy", "segwatch/pixel_accuracy"]
    # Per-class IoU curves come after, in a group of their own (its cards are drawn once scrolled to).
    assert "segwatch_IoU" in groups and groups.index("segwatch") < groups.index("segwatch_IoU"), groups
    assert not any("IoU/" in t for t in first_group), first_group
    tags = json.loads(get(f"{url}/data/plugin/timeseries/tags"))
    scalars = {tag for run in tags["scalars"]["runTagInfo"].values() for tag in run}
    assert {f"segwatch_IoU/{name}" for name in CLASS_NAMES["cityscapes"]} <= scalars
