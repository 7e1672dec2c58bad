"""A real TensorBoard and a real headless Chromium, for screenshots and for tests of what a user sees.

Shared by the README screenshot script and the browser tests. Debian's `chromium` and `chromium-driver`
(chromedriver at /usr/bin/chromedriver) are used: nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMEDRIVER = "/usr/bin/chromedriver"
# TensorBoard's default look: a 1600x1200 window, cards at their default width, nothing zoomed.
WINDOW = (1600, 1200)


def chromium_missing() -> str | None:
    """Why a browser test cannot run here, or None when Chromium and its driver are installed."""
    if not Path(CHROMEDRIVER).exists():
        return f"no chromedriver at {CHROMEDRIVER} (Debian package chromium-driver)"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "no chromium on PATH (Debian package chromium)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tensorboard(
    logdir: Path, *, timeout: float = 90.0, flags: tuple[str, ...] = ("--samples_per_plugin", "images=1000")
) -> Iterator[str]:
    """A `tensorboard` process over `logdir` on a free loopback port, every image step kept (or run with
    `flags` instead); yields its URL once it answers and has loaded the runs."""
    port = free_port()
    binary = Path(sys.executable).with_name("tensorboard")
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "tensorboard.main"]
    process = subprocess.Popen(
        [
            *command,
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *flags,
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tensorboard exited with {process.returncode} before answering")
            try:
                with urllib.request.urlopen(f"{url}/data/runs", timeout=2) as response:
                    if response.read().strip() not in (b"", b"[]"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tensorboard did not serve runs within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def chromium(window: tuple[int, int] = WINDOW) -> Iterator[object]:
    """A headless Chromium driven through selenium, its viewport exactly `window` CSS px at scale 1."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="segwatch-chromium-")
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(flag)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        options.binary_location = binary
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # --window-size sizes the outer window; make the page itself (what a user looks at) 1600x1200.
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# TensorBoard's dashboards are Polymer and Angular components: their images sit inside shadow roots, which
# document.querySelectorAll does not enter.
_DEEP_IMAGES = """
const found = [];
const walk = (root) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'IMG') found.push(el);
    if (el.shadowRoot) walk(el.shadowRoot);
  }
};
walk(document);
const loaded = found.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
"""


def wait_for_images(driver: object, *, count: int = 1, timeout: float = 60.0) -> list[object]:
    """Wait until at least `count` <img> elements of the page have loaded; returns every loaded one."""
    deadline = time.monotonic() + timeout
    while True:
        loaded = driver.execute_script(_DEEP_IMAGES + "return loaded;")  # type: ignore[attr-defined]
        if len(loaded) >= count:
            time.sleep(1.5)  # let the layout settle after the last image arrives
            return list(driver.execute_script(_DEEP_IMAGES + "return loaded;"))  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} images loaded within {timeout:.0f} s")
        time.sleep(0.5)


def image_boxes(driver: object) -> list[dict[str, float]]:
    """On-screen box and natural size of every loaded image, with the src it came from."""
    return list(
        driver.execute_script(  # type: ignore[attr-defined]
            _DEEP_IMAGES
            + "return loaded.map(i => {const r = i.getBoundingClientRect(); return {x: r.x, y: r.y,"
            " width: r.width, height: r.height, naturalWidth: i.naturalWidth,"
            " naturalHeight: i.naturalHeight, src: i.src};});"
        )
    )


def screenshot(driver: object, url: str, path: Path, *, images: int = 1, timeout: float = 60.0) -> None:
    """Open `url`, wait for `images` images to load, and save the whole 1600x1200 viewport as PNG."""
    driver.get(url)  # type: ignore[attr-defined]
    wait_for_images(driver, count=images, timeout=timeout)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
