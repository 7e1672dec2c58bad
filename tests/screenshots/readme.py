"""`make screenshots`: the README's pictures, taken from what `segwatch demo` logs, exactly as a user sees it.

A real `tensorboard` over the demo logdir, Debian's headless Chromium at TensorBoard's default 1600x1200
window and card size, nothing cropped, filtered or zoomed. Writes docs/*.png. Other screenshots (the viewer
plugin's) add themselves to the `screenshots` make target.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import browser

DOCS = Path(__file__).parents[2] / "docs"


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    missing = browser.chromium_missing()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="segwatch-screenshots-") as work:
        workdir = Path(work)
        subprocess.run(
            [sys.executable, "-m", "segwatch", "demo", "--dumps", "dumps", "--logdir", "tb"],
            cwd=workdir,
            check=True,
            capture_output=True,
            timeout=300,
        )
        sys.path.insert(0, str(Path(__file__).parents[1]))
        from conftest import read_event_tensors

        # The picture itself, at full size, from the event file (the last epoch of the better run).
        grid = read_event_tensors(workdir / "tb" / "wider-decoder")["segwatch/grid"][-1][1]
        (DOCS / "demo-grid.png").write_bytes(grid.string_val[2])
        with browser.tensorboard(workdir / "tb") as url, browser.chromium() as driver:
            # The landing page: Time Series, as it opens.
            browser.screenshot(driver, f"{url}/#timeseries", DOCS / "tensorboard-timeseries.png", images=4)
            browser.screenshot(driver, f"{url}/#images", DOCS / "tensorboard-images.png", images=4)
            driver.get(f"{url}/#scalars")
            time.sleep(6)
            driver.save_screenshot(str(DOCS / "tensorboard-scalars.png"))
    for name in ("demo-grid", "tensorboard-timeseries", "tensorboard-images", "tensorboard-scalars"):
        print(f"wrote {DOCS / name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
