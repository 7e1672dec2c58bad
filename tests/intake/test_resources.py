"""Resource bounds: a scan of a big root holds one directory open and little memory, and the live watcher
notices when inotify runs out of watches (which watchdog does not report) and polls instead.

The watch limit is lowered inside a user namespace of its own (`unshare -U -r`): the limit there applies to
that namespace only, so the machine's other inotify users are not touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
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


WATCHER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading, time
    from pathlib import Path
    from segwatch.intake.scan import scan_tree
    from segwatch.intake.watcher import Watcher

    limit, before, after, root = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    with open("/proc/sys/user/max_inotify_watches", "w") as knob:
        knob.write(str(limit))

    def epoch(number):
        directory = root / "run" / f"epoch_{number}"
        directory.mkdir(parents=True)
        time.sleep(0.02)  # written in place, after the directory appeared
        (directory / "gt.npy").write_bytes(b"x")

    for number in range(before):
        epoch(number)
    seen, rescans, lock = set(), [], threading.Lock()
    def change(relative):
        with lock:
            seen.add(relative)
    def rescan(reason):
        # What the service does when asked: a full scan, which finds what the observer missed.
        rescans.append(reason)
        found = set(scan_tree(root))
        with lock:
            seen.update(found)
    watcher = Watcher(root, kind="inotify", poll_interval=0.1, on_change=change, on_rescan_needed=rescan)
    watcher.start()
    at_start = watcher.kind
    for number in range(before, before + after):
        epoch(number)
    wanted = {f"run/epoch_{n}/gt.npy" for n in range(before, before + after)}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            missing = wanted - seen
        if not missing and watcher.kind == "polling":
            break
        time.sleep(0.05)
    watcher.stop()
    print(json.dumps({"at_start": at_start, "at_end": watcher.kind, "missing": sorted(missing), "rescans": rescans}))
    """
)


def run_with_watch_limit(limit: int, before: int, after: int, root: Path) -> dict[str, object]:
    unshare = shutil.which("unshare")
    if unshare is None or not os.path.exists("/proc/sys/user/max_inotify_watches"):
        pytest.skip("needs unshare(1) and per-namespace inotify limits (/proc/sys/user)")
    root.mkdir()
    result = subprocess.run(
        [
            unshare,
            "-U",
            "-r",
            sys.executable,
            "-c",
            WATCHER_SCRIPT,
            str(limit),
            str(before),
            str(after),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 and ("unshare failed" in result.stderr or "Permission denied" in result.stderr):
        pytest.skip(f"cannot make a user namespace here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["log"] = result.stderr
    return report


def test_tree_already_past_the_watch_limit_is_polled_from_the_start(tmp_path: Path) -> None:
    report = run_with_watch_limit(limit=10, before=20, after=5, root=tmp_path / "dumps")
    assert report["at_start"] == "polling"
    assert report["missing"] == []
    assert "inotify watch limit reached" in str(report["log"])
    assert "max_user_watches" in str(report["log"])


def test_reaching_the_watch_limit_later_switches_to_polling_and_asks_for_a_rescan(tmp_path: Path) -> None:
    report = run_with_watch_limit(limit=12, before=2, after=20, root=tmp_path / "dumps")
    assert report["at_start"] == "inotify"
    assert report["at_end"] == "polling"
    assert report["missing"] == []
    assert any("watch limit" in reason for reason in report["rescans"])  # type: ignore[union-attr]
    assert str(report["log"]).count("inotify watch limit reached") == 1
