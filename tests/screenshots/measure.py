"""Screenshots of a logdir's grids in TensorBoard's Images and Time Series tabs, and their legends' glyph
heights on screen. `python tests/screenshots/measure.py LOGDIR OUTDIR` prints one line per grid and tab."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import browser
import legibility

TABS = {"images": "#images", "timeseries": "#timeseries"}
# Scroll every scrolled pane one step down (Time Series scrolls its main pane, not the window).
_SCROLL_DOWN = """
window.scrollBy(0, 400);
document.querySelectorAll('*').forEach(e => { if (e.scrollHeight > e.clientHeight + 10) e.scrollTop += 400; });
"""


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def grid_shots(
    driver: object, url: str, sizes: dict[str, tuple[int, int]], out: Path
) -> dict[tuple[str, str], tuple[np.ndarray, dict[str, float]] | None]:
    """{(tab, run): (screenshot, the grid's on-screen box)} with each grid scrolled into view.

    `sizes` maps a run to its grid's natural (width, height), which is how its <img> is recognised."""
    found = {}
    for tab, fragment in TABS.items():
        driver.get(f"{url}/{fragment}")  # type: ignore[attr-defined]
        time.sleep(3)
        for run, (width, height) in sizes.items():
            deadline = time.monotonic() + 20
            while True:
                elements = driver.execute_script(  # type: ignore[attr-defined]
                    browser._DEEP_IMAGES + "return found.filter(i => i.naturalWidth === arguments[0]"
                    " && i.naturalHeight === arguments[1]);",
                    width,
                    height,
                )
                if elements or time.monotonic() > deadline:
                    break
                # Time Series loads a card's image only once the card is on screen: scroll down to it.
                driver.execute_script(_SCROLL_DOWN)  # type: ignore[attr-defined]
                time.sleep(0.5)
            if not elements:
                found[(tab, run)] = None  # not on the tab's first page
                continue
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", elements[0])  # type: ignore[attr-defined]
            time.sleep(1.0)
            box = driver.execute_script(  # type: ignore[attr-defined]
                "const r = arguments[0].getBoundingClientRect();"
                " return {x: r.x, y: r.y, width: r.width, height: r.height};",
                elements[0],
            )
            path = out / f"{tab}-{run}.png"
            driver.save_screenshot(str(path))  # type: ignore[attr-defined]
            found[(tab, run)] = (_read_png(path), box)
    return found


def main() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from conftest import read_event_tensors

    logdir, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    sizes, colours = {}, {}
    for run_dir in sorted(p for p in logdir.iterdir() if p.is_dir()):
        (tag,) = [t for t in read_event_tensors(run_dir) if t.endswith("/grid")]
        proto = read_event_tensors(run_dir)[tag][-1][1]
        sizes[run_dir.name] = (int(proto.string_val[0]), int(proto.string_val[1]))
        legend_top = _read_png_bytes(proto.string_val[2])
        colours[run_dir.name] = legend_top
    with browser.tensorboard(logdir) as url, browser.chromium() as driver:
        shots = grid_shots(driver, url, sizes, out)
    for (tab, run), shown in shots.items():
        if shown is None:
            print(f"{tab:10} {run:16} not found on the tab's first page")
            continue
        shot, box = shown
        backdrop, ink = colours[run]
        picture = legibility.crop(shot, box, sizes[run])
        legend = legibility.legend_rows(picture, backdrop)
        heights = legibility.glyph_heights(legend, backdrop, ink)
        print(
            f"{tab:10} {run:16} shown {picture.shape[1]}x{picture.shape[0]} of {sizes[run][0]}x{sizes[run][1]}: "
            f"legend glyphs {legibility.tall_glyph_height(heights):.1f} px tall (75th pct of {len(heights)}), "
            f"tallest {max(heights, default=0)} px"
        )


def _read_png_bytes(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The legend's backdrop (its most common colour at the bottom) and ink (its darkest common colour)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    bottom = pixels[-max(4, pixels.shape[0] // 20) :].reshape(-1, 3)
    colours, counts = np.unique(bottom, axis=0, return_counts=True)
    backdrop = colours[np.argmax(counts)]
    luma = colours @ np.array([0.2126, 0.7152, 0.0722])
    common = counts >= max(3, counts.max() // 200)
    ink = colours[common][np.argmin(luma[common])]
    return backdrop, ink


if __name__ == "__main__":
    main()
