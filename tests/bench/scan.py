"""What one scan of a big dump root costs: time, peak Python memory, open descriptors, inotify watches.

Builds a tree of `--files` dump files (runs x epochs x {gt, pred}, or all in one directory with --flat), then
times `scan_tree` (the start-up scan and every periodic rescan), measures its peak traced memory and the most
descriptors open while it runs, and counts the inotify watches a live watcher takes on the same tree.

    python tests/bench/scan.py                    # 100,000 files in 50,000 epoch directories
    python tests/bench/scan.py --flat             # 100,000 files in one directory
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from segwatch.intake.scan import scan_tree
from segwatch.intake.watcher import Watcher


def build(root: Path, files: int, flat: bool, runs: int) -> None:
    if flat:
        directory = root / "run" / "epoch_0"
        directory.mkdir(parents=True)
        for index in range(files):
            (directory / f"gt_{index}.npy").touch()
        return
    epochs = files // (2 * runs)
    for run in range(runs):
        for epoch in range(epochs):
            directory = root / f"run{run}" / f"epoch_{epoch}"
            directory.mkdir(parents=True)
            (directory / "gt.npy").touch()
            (directory / "pred.npy").touch()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def inotify_watches() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                count += sum(line.startswith("inotify wd:") for line in info)
        except OSError:
            continue
    return count


def measure(root: Path) -> dict[str, float]:
    baseline = open_descriptors()
    most = baseline
    started = time.perf_counter()
    for count, _ in enumerate(scan_tree(root), 1):
        if count % 500 == 0:
            most = max(most, open_descriptors())
    cold = time.perf_counter() - started
    tracemalloc.start()
    started = time.perf_counter()
    listed = sum(1 for _ in scan_tree(root))
    warm = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "entries_listed": listed,
        "scan_s": round(cold, 3),
        "scan_traced_s": round(warm, 3),
        "peak_traced_mib": round(peak / 2**20, 2),
        "extra_descriptors_during_scan": most - baseline,
    }


def watch_cost(root: Path) -> dict[str, object]:
    seen = threading.Event()
    watcher = Watcher(
        root, kind="inotify", poll_interval=1.0, on_change=lambda _: seen.set(), on_rescan_needed=print
    )
    started = time.perf_counter()
    watcher.start()
    armed = time.perf_counter() - started
    watches = inotify_watches()
    kind = watcher.kind
    watcher.stop()
    return {"watcher_start_s": round(armed, 2), "inotify_watches": watches, "observer": kind}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--flat", action="store_true", help="every file in one directory")
    parser.add_argument("--no-watch", action="store_true", help="skip the inotify watcher")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segwatch-scan-", dir=args.workdir))
    try:
        started = time.perf_counter()
        build(work / "dumps", args.files, args.flat, args.runs)
        report: dict[str, object] = {
            "files": args.files,
            "flat": args.flat,
            "build_s": round(time.perf_counter() - started, 1),
        }
        report.update(measure(work / "dumps"))
        if not args.no_watch:
            report.update(watch_cost(work / "dumps"))
        with open("/proc/sys/fs/inotify/max_user_watches") as limit:
            report["max_user_watches"] = int(limit.read())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
