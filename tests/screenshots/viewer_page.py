"""Driving the segwatch viewer inside a real TensorBoard page: open its tab, enter its frame, wait for it."""

from __future__ import annotations

import time
from typing import Any

WAIT_IDLE = "const v = window.segwatchViewer; return !!v && v.paints > 0 && !v.busy ? v.paints : 0;"


def open_viewer(driver: Any, url: str, *, state: str = "", timeout: float = 60.0) -> None:
    """Load TensorBoard on the viewer's tab (with `state`, e.g. "sw.mode=error", in the hash) and switch
    the driver into the viewer's frame once it has painted."""
    from selenium.webdriver.common.by import By

    # A URL differing from the open page only in its hash would not load the page again.
    driver.switch_to.default_content()
    driver.get("about:blank")
    driver.get(f"{url}/#segwatch_viewer" + (f"&{state}" if state else ""))
    deadline = time.monotonic() + timeout
    while True:
        frames = driver.find_elements(By.CSS_SELECTOR, "iframe")
        if frames:
            driver.switch_to.frame(frames[0])
            break
        if time.monotonic() > deadline:
            raise TimeoutError("TensorBoard showed no plugin frame")
        time.sleep(0.2)
    wait_idle(driver, timeout=max(1.0, deadline - time.monotonic()))


def wait_idle(driver: Any, *, after: int = 0, timeout: float = 30.0) -> int:
    """Wait until the viewer has finished more than `after` repaints and loads nothing; returns the count."""
    deadline = time.monotonic() + timeout
    while True:
        paints = int(driver.execute_script(WAIT_IDLE) or 0)
        if paints > after:
            return paints
        if time.monotonic() > deadline:
            status = driver.execute_script(
                "const s = document.getElementById('status'); return s && s.textContent;"
            )
            raise TimeoutError(f"the viewer did not finish painting (status: {status!r})")
        time.sleep(0.05)
