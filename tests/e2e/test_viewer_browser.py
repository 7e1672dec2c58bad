"""The viewer as a user sees it: the real TensorBoard page in headless Chromium, its canvas pixels read back
and compared with what the dumped arrays say they must be."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from segwatch.dump import save_epoch
from segwatch.metrics.confusion import scores
from segwatch.render.evaluation import item_confusion
from segwatch.render.items import Item
from segwatch.render.palettes import build_palette

from conftest import blob_labels
from screenshots.browser import chromium, chromium_missing, tensorboard
from screenshots.viewer_page import open_viewer, wait_idle

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))

NAMES = ["background", "road", "building", "sky"]
SHAPE = (60, 80)
ITEMS = 3
EPOCHS = 3
IGNORE = 255
PALETTE = build_palette("voc", len(NAMES)).astype(np.int64)


def write_dump(root: Path, runs: dict[str, range], seed: int = 11) -> dict[str, dict[int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    gt = blob_labels(rng, (ITEMS, *SHAPE), len(NAMES), cell=6)
    gt[:, :4, :6] = IGNORE
    image = rng.integers(0, 256, size=(ITEMS, *SHAPE, 3), dtype=np.uint8)
    preds: dict[str, dict[int, np.ndarray]] = {}
    for run, epochs in runs.items():
        for epoch in epochs:
            pred = np.where(
                rng.random((ITEMS, *SHAPE)) < 0.3 + 0.2 * epoch,
                gt,
                blob_labels(rng, (ITEMS, *SHAPE), 4, cell=6),
            )
            pred = np.where(pred == IGNORE, 0, pred).astype(np.uint8)
            preds.setdefault(run, {})[epoch] = pred
            save_epoch(root / "dumps", epoch, gt=gt, pred=pred, image=image, run=run)
    np.save(root / "gt.npy", gt)
    np.save(root / "image.npy", image)
    return preds


def config_file(root: Path) -> Path:
    config = {
        "watch": {
            "root": str(root / "dumps"),
            "pattern": "{run}/epoch_{epoch}/{role}.npy",
            "settle": "100ms",
        },
        "tensorboard": {"logdir": str(root / "tb")},
        "compose": {
            "num_classes": len(NAMES),
            "class_names": NAMES,
            "palette": "voc",
            "ignore_index": IGNORE,
            "max_items": 1,
            "panels": ["image", "gt", "pred"],
        },
        "metrics": {"enabled": False},
    }
    path = root / "segwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("viewer-browser")
    preds = write_dump(root, {"a": range(EPOCHS), "b": range(EPOCHS)})
    result = subprocess.run(
        [sys.executable, "-m", "segwatch", "once", "--config", str(config_file(root))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {
        "root": root,
        "preds": preds,
        "gt": np.load(root / "gt.npy"),
        "image": np.load(root / "image.npy"),
    }


@pytest.fixture(scope="module")
def page(dump):
    # The default loader and no flag: the viewer's own loader keeps every epoch.
    with tensorboard(dump["root"] / "tb", flags=()) as url, chromium() as driver:
        yield url, driver


@pytest.fixture
def viewer(page):
    """The driver inside the viewer's frame; after the test, the browser console must hold no error."""
    url, driver = page
    driver.get_log("browser")  # drop what earlier tests left

    def open_at(**state: object) -> Any:
        open_viewer(driver, url, state="&".join(f"sw.{key}={value}" for key, value in state.items()))
        return driver

    yield open_at
    driver.switch_to.default_content()
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def canvas_pixel(driver: Any, x: int, y: int) -> list[int]:
    """The on-screen RGB of picture pixel (x, y), read from the view's canvas."""
    return list(
        driver.execute_script(
            "const v = window.segwatchViewer.view; const [cx, cy] = v.canvasAt(arguments[0], arguments[1]);"
            "return Array.from(v.context.getImageData(Math.floor(cx), Math.floor(cy), 1, 1).data).slice(0, 3);",
            x,
            y,
        )
    )


def act(driver: Any, script: str, *args: object) -> None:
    """Run `script` in the frame, then wait for the repaint it causes."""
    before = int(driver.execute_script("return window.segwatchViewer.paints"))
    driver.execute_script(script, *args)
    wait_idle(driver, after=before)


def click(driver: Any, selector: str, *, alt: bool = False) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    before = int(driver.execute_script("return window.segwatchViewer.paints"))
    target = driver.find_element(By.CSS_SELECTOR, selector)
    if alt:
        ActionChains(driver).key_down(Keys.ALT).click(target).key_up(Keys.ALT).perform()
    else:
        target.click()
    wait_idle(driver, after=before)


def sample_pixels(count: int = 40, seed: int = 0) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(0, SHAPE[1])), int(rng.integers(0, SHAPE[0]))) for _ in range(count)]


def blend(colour: np.ndarray, base: np.ndarray, alpha: float) -> list[int]:
    return [int(np.floor(alpha * c + (1 - alpha) * b + 0.5)) for c, b in zip(colour, base, strict=True)]


def test_opacity_half_blends_prediction_and_image_as_computed(viewer, dump):
    driver = viewer(run="a", epoch=2, item=1, mode="pred")
    act(
        driver,
        "const s = document.getElementById('alpha'); s.value = 50; s.dispatchEvent(new Event('input'));",
    )
    pred, image = dump["preds"]["a"][2][1], dump["image"][1]
    for x, y in sample_pixels():
        expected = blend(PALETTE[pred[y, x]], image[y, x].astype(np.int64), 0.5)
        assert np.abs(np.array(canvas_pixel(driver, x, y)) - expected).max() <= 1, (x, y)


def test_a_class_toggled_off_shows_the_image_and_alt_click_shows_one_class_alone(viewer, dump):
    driver = viewer(run="a", epoch=1, item=0, mode="pred", alpha=1)
    pred, image = dump["preds"]["a"][1][0], dump["image"][0]
    road = [(x, y) for x, y in sample_pixels(400) if pred[y, x] == 1][:10]
    sky = [(x, y) for x, y in sample_pixels(400) if pred[y, x] == 3][:10]
    assert road and sky
    assert canvas_pixel(driver, *road[0]) == PALETTE[1].tolist()
    click(driver, "#legend tr[data-class='1']")
    for x, y in road:
        assert canvas_pixel(driver, x, y) == image[y, x].tolist()
    for x, y in sky:
        assert canvas_pixel(driver, x, y) == PALETTE[3].tolist()
    click(driver, "#legend tr[data-class='1']")  # back on
    click(driver, "#legend tr[data-class='3']", alt=True)  # sky alone
    for x, y in road:
        assert canvas_pixel(driver, x, y) == image[y, x].tolist()
    for x, y in sky:
        assert canvas_pixel(driver, x, y) == PALETTE[3].tolist()


def test_hover_readout_names_the_pixel_and_its_classes(viewer, dump):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = viewer(run="b", epoch=0, item=2, mode="pred")
    gt, pred = dump["gt"][2], dump["preds"]["b"][0][2]
    canvas = driver.find_element(By.ID, "view")
    for x, y in [(5, 2), *sample_pixels(6, seed=3)]:
        cx, cy = driver.execute_script(
            "return window.segwatchViewer.view.canvasAt(arguments[0], arguments[1])", x, y
        )
        size = canvas.size
        ActionChains(driver).move_to_element_with_offset(
            canvas, int(cx - size["width"] / 2), int(cy - size["height"] / 2)
        ).perform()
        text = driver.find_element(By.ID, "readout").text
        gt_name = "ignore" if gt[y, x] == IGNORE else NAMES[gt[y, x]]
        # Epoch 0 has no previous epoch to compare with, so the readout names gt and prediction only.
        assert text == f"x {x}, y {y} · GT {gt_name} · pred {NAMES[pred[y, x]]}"


def counts(driver: Any) -> dict[str, int]:
    from selenium.webdriver.common.by import By

    return dict(json.loads(driver.find_element(By.ID, "counts").get_attribute("data-counts")))


def test_error_map_counts_equal_the_arrays_for_all_classes_and_for_one(viewer, dump):
    driver = viewer(run="a", epoch=2, item=0, mode="error")
    gt, pred = dump["gt"][0], dump["preds"]["a"][2][0]
    labelled = gt != IGNORE
    assert counts(driver) == {
        "correct": int((labelled & (gt == pred)).sum()),
        "fn": int((labelled & (gt != pred)).sum()),
        "fp": 0,
        "ignored": int((~labelled).sum()),
        "other": 0,
    }
    click(driver, "#legend tr[data-class='2']", alt=True)
    wrong = labelled & (gt != pred)
    assert counts(driver) == {
        "correct": int((labelled & (gt == pred)).sum()),
        "fn": int((wrong & (gt == 2)).sum()),
        "fp": int((wrong & (gt != 2) & (pred == 2)).sum()),
        "ignored": int((~labelled).sum()),
        "other": int((wrong & (gt != 2) & (pred != 2)).sum()),
    }
    x, y = next((x, y) for x, y in sample_pixels(400) if wrong[y, x] and gt[y, x] == 2)
    assert canvas_pixel(driver, x, y) == [230, 30, 60]


def test_compare_change_map_counts_equal_the_arrays(viewer, dump):
    driver = viewer(run="a", epoch=2, item=1, mode="change", ref="prev")
    gt, before, after = dump["gt"][1], dump["preds"]["a"][1][1], dump["preds"]["a"][2][1]
    labelled = gt != IGNORE
    was, now = labelled & (before == gt), labelled & (after == gt)
    assert counts(driver) == {
        "became_right": int((~was & now & labelled).sum()),
        "became_wrong": int((was & ~now).sum()),
        "stayed_wrong": int((~was & ~now & labelled).sum()),
        "stayed_right": int((was & now).sum()),
        "ignored": int((~labelled).sum()),
    }
    # Against the other run at the same epoch.
    act(
        driver,
        "const s = document.getElementById('ref'); s.value = 'r:b'; s.dispatchEvent(new Event('change'));",
    )
    other = dump["preds"]["b"][2][1]
    was = labelled & (other == gt)
    assert counts(driver)["became_right"] == int((~was & now & labelled).sum())


def test_the_table_sorts_worst_first_and_opens_an_item(viewer, dump):
    from selenium.webdriver.common.by import By

    driver = viewer(run="a", epoch=0, item=0)
    gt, pred = dump["gt"], dump["preds"]["a"][0]
    miou = [
        scores(item_confusion(Item(gt=gt[i], pred=pred[i], image=None), len(NAMES), IGNORE)).mean_iou
        for i in range(ITEMS)
    ]
    click(driver, "#table th[data-sort='miou']")
    rows = driver.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    order = [int(row.get_attribute("data-item")) for row in rows]
    assert order == sorted(range(ITEMS), key=lambda i: miou[i])
    click(driver, f"#table tbody tr[data-item='{order[0]}']")
    assert driver.execute_script("return window.segwatchViewer.state.item") == order[0]


def test_arrow_keys_step_epochs_and_the_hash_holds_the_view(viewer, page, dump):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = viewer(run="b", epoch=2, item=1, mode="gt")
    driver.find_element(By.ID, "view").click()
    before = int(driver.execute_script("return window.segwatchViewer.paints"))
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    wait_idle(driver, after=before)
    assert driver.execute_script("return window.segwatchViewer.state.step") == 1
    assert driver.find_element(By.ID, "epoch-label").text.startswith("1 ")
    driver.switch_to.default_content()
    shared = driver.current_url
    assert (
        "sw.run=b" in shared and "sw.epoch=1" in shared and "sw.mode=gt" in shared and "sw.item=1" in shared
    )
    # The shared URL opens the same view.
    open_viewer(driver, shared.split("/#")[0], state=shared.split("#segwatch_viewer&", 1)[1])
    state = driver.execute_script(
        "const s = window.segwatchViewer.state; return [s.run, s.step, s.item, s.mode]"
    )
    assert state == ["b", 1, 1, "gt"]
    # The flip key swaps prediction and ground truth in place.
    x, y = next(
        (x, y)
        for x, y in sample_pixels(400)
        if dump["gt"][1][y, x] != dump["preds"]["b"][1][1][y, x] and dump["gt"][1][y, x] != IGNORE
    )
    act(
        driver,
        "const s = document.getElementById('alpha'); s.value = 100; s.dispatchEvent(new Event('input'));",
    )
    assert canvas_pixel(driver, x, y) == PALETTE[dump["gt"][1][y, x]].tolist()
    driver.find_element(By.ID, "view").click()
    before = int(driver.execute_script("return window.segwatchViewer.paints"))
    driver.find_element(By.ID, "view").send_keys("f")
    wait_idle(driver, after=before)
    assert canvas_pixel(driver, x, y) == PALETTE[dump["preds"]["b"][1][1][y, x]].tolist()


def test_the_wheel_zooms_around_the_cursor_and_dragging_pans(viewer):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By

    driver = viewer(run="a", epoch=0, item=0, mode="boundary")
    canvas = driver.find_element(By.ID, "view")
    view = "window.segwatchViewer.view"
    scale = driver.execute_script(f"return {view}.scale")
    cx, cy = driver.execute_script(f"return {view}.canvasAt(30, 20)")
    size = canvas.size
    origin = ScrollOrigin.from_element(canvas, int(cx - size["width"] / 2), int(cy - size["height"] / 2))
    ActionChains(driver).scroll_from_origin(origin, 0, -300).perform()
    time.sleep(0.3)
    assert driver.execute_script(f"return {view}.scale") > 1.5 * scale
    # The picture pixel under the cursor stays under it.
    assert driver.execute_script(
        f"return {view}.pictureAt(arguments[0], arguments[1])", int(cx), int(cy)
    ) == [30, 20]
    before = driver.execute_script(f"return {view}.offset")
    ActionChains(driver).move_to_element(canvas).click_and_hold().move_by_offset(40, 25).release().perform()
    after = driver.execute_script(f"return {view}.offset")
    assert [round(after[0] - before[0]), round(after[1] - before[1])] == [40, 25]
    # Nearest-neighbour: every canvas pixel inside a zoomed picture pixel has its exact colour.
    x0, y0 = driver.execute_script(f"return {view}.canvasAt(30, 20)")
    colours = {tuple(canvas_pixel(driver, 30, 20))}
    half = driver.execute_script(f"return {view}.scale") / 2 - 1
    for dx, dy in ((-half, -half), (half, half), (half, -half)):
        colours.add(
            tuple(
                driver.execute_script(
                    f"return Array.from({view}.context.getImageData(arguments[0], arguments[1], 1, 1).data)"
                    ".slice(0, 3)",
                    int(x0 + dx),
                    int(y0 + dy),
                )
            )
        )
    assert len(colours) == 1


def test_the_viewer_follows_tensorboards_dark_mode(viewer):
    driver = viewer(run="a")
    driver.switch_to.default_content()
    driver.execute_script("document.body.classList.add('dark-mode')")
    driver.switch_to.frame(driver.find_element("css selector", "iframe"))
    deadline = time.monotonic() + 5
    while not driver.execute_script("return document.documentElement.classList.contains('dark')"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(48, 48, 48)"


@pytest.mark.timeout(180)
def test_a_new_epoch_from_a_running_daemon_appears_without_a_reload(tmp_path):
    write_dump(tmp_path, {"live": range(2)}, seed=5)
    with open(tmp_path / "daemon.log", "wb") as daemon_log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "segwatch", "run", "--config", str(config_file(tmp_path))],
            stdout=subprocess.DEVNULL,
            stderr=daemon_log,
        )
    try:
        deadline = time.monotonic() + 90
        while not list((tmp_path / "tb" / "live").glob("events.out.tfevents.*")):
            assert daemon.poll() is None and time.monotonic() < deadline, (
                tmp_path / "daemon.log"
            ).read_text()
            time.sleep(0.2)
        with tensorboard(tmp_path / "tb", flags=()) as url, chromium() as driver:
            open_viewer(driver, url)
            deadline = time.monotonic() + 30
            while driver.execute_script("return window.segwatchViewer.state.step") != 1:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            driver.execute_script("window.notReloaded = true")
            rng = np.random.default_rng(9)
            save_epoch(
                tmp_path / "dumps",
                2,
                gt=np.load(tmp_path / "gt.npy"),
                pred=blob_labels(rng, (ITEMS, *SHAPE), len(NAMES), cell=6),
                image=np.load(tmp_path / "image.npy"),
                run="live",
            )
            deadline = time.monotonic() + 60
            while driver.execute_script("return window.segwatchViewer.state.step") != 2:
                assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
                time.sleep(0.2)
            from selenium.webdriver.common.by import By

            assert driver.execute_script("return window.notReloaded") is True
            wait_idle(driver)
            assert driver.find_element(By.ID, "epoch-label").text == "2 (3 of 3)"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
