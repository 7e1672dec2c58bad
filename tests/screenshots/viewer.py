"""README screenshots of the segwatch viewer: the demo's data in a real TensorBoard, in headless Chromium at
TensorBoard's default window size.

    python tests/screenshots/viewer.py [--out docs]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from screenshots.browser import chromium, chromium_missing, tensorboard
from screenshots.viewer_page import open_viewer, wait_idle

# (file, hash state, what to do in the page before the picture)
SHOTS = [
    ("viewer.png", "sw.run=wider-decoder&sw.epoch=7&sw.item=1&sw.mode=pred&sw.alpha=0.6", "hover"),
    ("viewer-errors.png", "sw.run=baseline&sw.epoch=7&sw.item=2&sw.mode=error", "solo:1"),
    (
        "viewer-compare.png",
        "sw.run=wider-decoder&sw.epoch=7&sw.item=0&sw.mode=change&sw.ref=r:baseline",
        None,
    ),
    ("viewer-dark.png", "sw.run=wider-decoder&sw.epoch=3&sw.item=3&sw.mode=side&sw.alpha=0.8", "dark"),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "docs")
    args = parser.parse_args()
    why = chromium_missing()
    if why:
        sys.exit(f"cannot take screenshots: {why}")
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(
            [sys.executable, "-m", "segwatch", "demo", "--dumps", "dumps", "--logdir", "tb"],
            cwd=work,
            check=True,
            capture_output=True,
            timeout=300,
        )
        with tensorboard(Path(work) / "tb", flags=()) as url, chromium() as driver:
            for name, state, action in SHOTS:
                open_viewer(driver, url, state=state)
                if action == "dark":
                    driver.switch_to.default_content()
                    driver.execute_script("document.body.classList.add('dark-mode')")
                elif action == "hover":
                    from selenium.webdriver.common.action_chains import ActionChains
                    from selenium.webdriver.common.by import By

                    canvas = driver.find_element(By.ID, "view")
                    ActionChains(driver).move_to_element_with_offset(canvas, 40, -30).perform()
                elif action and action.startswith("solo:"):
                    from selenium.webdriver.common.action_chains import ActionChains
                    from selenium.webdriver.common.by import By
                    from selenium.webdriver.common.keys import Keys

                    before = int(driver.execute_script("return window.segwatchViewer.paints"))
                    row = driver.find_element(By.CSS_SELECTOR, f"#legend tr[data-class='{action[5:]}']")
                    ActionChains(driver).key_down(Keys.ALT).click(row).key_up(Keys.ALT).perform()
                    wait_idle(driver, after=before)
                time.sleep(1.0)  # thumbnails follow the main view
                driver.switch_to.default_content()
                args.out.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.out / name))
                print(args.out / name)


if __name__ == "__main__":
    main()
