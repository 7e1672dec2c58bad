"""Resource bounds: a scan of a big root holds one directory open and little memory. (The live watcher running
out of inotify watches, in processes of their own: tests/e2e/test_inotify_limits.py.)
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from segwatch.intake.scan import scan_tree


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count descriptors")
def test_scan_of_many_files_holds_one_directory_open_and_bounded_memory(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    flat = root / "flat" / "epoch_0"
    flat.mkdir(parents=True)
    for index in range(10_000):
        (flat / f"gt_{index}.npy").touch()
    for run in range(4):
        for epoch in range(250):
            directory = root / f"run{run}" / f"epoch_{epoch}"
            directory.mkdir(parents=True)
            (directory / "gt.npy").touch()
    before = descriptors()
    most = before
    tracemalloc.start()
    try:
        count = 0
        for count, _ in enumerate(scan_tree(root), 1):
            if count % 1000 == 0:
                most = max(most, descriptors())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000 + 2 + 4 * (1 + 250 * 2)
    assert most - before <= 1
    # 11,000 files listed: 1 MiB would be under 100 bytes each, less than one kept entry per file.
    assert peak < 1 << 20, peak
