"""inotify out of resources, in processes of their own: the watch limit lowered inside a user namespace
(`unshare -U -r`: the limit there applies to that namespace only, so the machine's other inotify users are not
touched), and a process out of file descriptors, which cannot create an inotify instance at all. The live
watcher must notice (watchdog does not report it) and poll instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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


_WITHOUT_INOTIFY = """
import json, os, resource, sys
from pathlib import Path
import watchdog.observers.inotify  # imported while files can still be opened
from segwatch.errors import ConfigError
from segwatch.intake.observers import choose_observer

root, mounts = Path(sys.argv[1]), sys.argv[2]
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
auto = choose_observer(root, "auto", mounts)
try:
    explicit = repr(choose_observer(root, "inotify", mounts))
except ConfigError as error:
    explicit = "ConfigError: " + str(error)
for fd in held:
    os.close(fd)
print(json.dumps({"auto": auto, "explicit": explicit}))
"""


def test_without_inotify_auto_polls_and_explicit_inotify_is_a_config_error(tmp_path):
    # A process out of file descriptors cannot create an inotify instance: a real failure of inotify_init.
    mounts = tmp_path / "mounts"
    mounts.write_text("device0 / ext4 rw,relatime 0 0\n")  # /proc/self/mounts format: a local root
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_INOTIFY, str(tmp_path), str(mounts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(result.stdout)
    kind, reason = outcome["auto"]
    assert kind == "polling"
    assert "inotify cannot start" in reason and "max_user_instances" in reason
    assert outcome["explicit"].startswith("ConfigError: observer 'inotify' was requested, but inotify cannot")
