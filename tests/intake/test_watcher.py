"""The watcher against real files and real watchdog observers (inotify and polling), and crafted mount tables."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from segwatch.errors import ConfigError
from segwatch.intake.observers import choose_observer
from segwatch.intake.scan import scan_tree
from segwatch.intake.watcher import Watcher

# watchdog warns when a nested `mkdir -p` gets one directory watched twice; harmless (the watch is reused), but
# the suite's warnings-as-errors would raise it inside watchdog's inotify reader thread and end that thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")

POLL = 0.1  # polling period, and the supervisor's period in both modes
WAIT = 5.0  # upper bound on any wait for a hint; normally met in milliseconds
KINDS = ["inotify", "polling"]


class Calls:
    """Arguments a watcher callback received, from whichever thread; waits on a condition, not the clock."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._items: list[str] = []
        self.times: dict[str, float] = {}

    def __call__(self, item: str) -> None:
        with self._condition:
            self._items.append(item)
            self.times.setdefault(item, time.monotonic())
            self._condition.notify_all()

    @property
    def items(self) -> list[str]:
        with self._condition:
            return list(self._items)

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = WAIT) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: predicate(self._items), timeout)

    def wait_for_all(self, expected: set[str], timeout: float = WAIT) -> bool:
        return self.wait_for(lambda items: expected <= set(items), timeout)


@dataclass
class Watched:
    watcher: Watcher
    root: Path
    changes: Calls
    rescans: Calls


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[..., Watched]]:
    """Factory: a started watcher on `tmp_path/dumps` (created unless told not to), stopped after the test."""
    started: list[Watcher] = []

    def start(kind: str = "inotify", *, create_root: bool = True, poll_interval: float = POLL) -> Watched:
        root = tmp_path / "dumps"
        if create_root:
            root.mkdir(exist_ok=True)
        changes, rescans = Calls(), Calls()
        watcher = Watcher(
            root, kind=kind, poll_interval=poll_interval, on_change=changes, on_rescan_needed=rescans
        )
        watched = Watched(watcher, root.resolve(), changes, rescans)
        watcher.start()
        started.append(watcher)
        return watched

    yield start
    for watcher in started:
        watcher.stop()


def save(path: Path, array: np.ndarray | None = None) -> None:
    """np.save to exactly `path` (given a name, np.save would append .npy to a temporary name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.save(handle, np.zeros((8, 8), np.uint8) if array is None else array)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def stage_epoch(directory: Path) -> None:
    for role in ("gt", "pred", "image"):
        save(directory / f"{role}.npy")


EPOCH_FILES = {"gt.npy", "pred.npy", "image.npy"}


# --- live hints -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_file_written_in_place_is_reported_when_created_and_again_when_it_grows(watch, kind):
    watched = watch(kind)
    path = watched.root / "run1" / "epoch_1" / "gt.npy"
    path.parent.mkdir(parents=True)
    array = np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)
    with path.open("wb") as handle:
        handle.write(b"\x93NUMPY")
        handle.flush()
        assert watched.changes.wait_for(lambda items: "run1/epoch_1/gt.npy" in items)
        reported_while_short = watched.changes.items.count("run1/epoch_1/gt.npy")
        handle.seek(0)
        np.save(handle, array)
    assert watched.changes.wait_for(lambda items: items.count("run1/epoch_1/gt.npy") > reported_while_short)
    assert np.array_equal(np.load(path), array)
    assert watched.rescans.items == []


@pytest.mark.parametrize("kind", KINDS)
def test_temp_file_renamed_into_place_is_reported_under_its_final_name(watch, tmp_path, kind):
    epoch = tmp_path / "dumps" / "run1" / "epoch_2"
    epoch.mkdir(parents=True)  # watched from the start, so inotify sees the rename itself
    watched = watch(kind)
    save(epoch / ".gt.npy.tmp")
    os.replace(epoch / ".gt.npy.tmp", epoch / "gt.npy")
    assert watched.changes.wait_for(lambda items: "run1/epoch_2/gt.npy" in items)
    assert not [item for item in watched.changes.items if hidden(item)]


@pytest.mark.parametrize("kind", KINDS)
def test_epoch_directory_renamed_in_reports_every_file_inside(watch, tmp_path, kind):
    (tmp_path / "dumps" / "run1").mkdir(parents=True)
    watched = watch(kind)
    staging = watched.root / "run1" / ".epoch_3.tmp"
    stage_epoch(staging)
    staging.rename(watched.root / "run1" / "epoch_3")
    assert watched.changes.wait_for_all({f"run1/epoch_3/{name}" for name in EPOCH_FILES})
    assert not [item for item in watched.changes.items if hidden(item)]


@pytest.mark.parametrize("kind", KINDS)
def test_directory_arriving_full_from_outside_the_root_reports_every_file(watch, tmp_path, kind):
    watched = watch(kind)
    outside = tmp_path / "elsewhere" / "run2"
    stage_epoch(outside / "epoch_1")
    stage_epoch(outside / "epoch_2")
    outside.rename(watched.root / "run2")
    expected = {f"run2/epoch_{epoch}/{name}" for epoch in (1, 2) for name in EPOCH_FILES}
    assert watched.changes.wait_for_all(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_copied_directory_reports_every_file(watch, tmp_path, kind):
    watched = watch(kind)
    source = tmp_path / "source" / "epoch_5"
    stage_epoch(source)
    shutil.copytree(source, watched.root / "run1" / "epoch_5")
    assert watched.changes.wait_for_all({f"run1/epoch_5/{name}" for name in EPOCH_FILES})


@pytest.mark.parametrize("kind", KINDS)
def test_hidden_staging_paths_are_never_reported(watch, kind):
    watched = watch(kind)
    stage_epoch(watched.root / "run1" / ".epoch_4.tmp")
    save(watched.root / ".staging" / "run9" / "epoch_1" / "gt.npy")
    save(watched.root / "run1" / "epoch_4" / ".pred.npy.tmp")
    (watched.root / ".staging" / "run9" / "epoch_1" / "gt.npy").write_bytes(b"more")
    # Written last: once it is reported, every hidden write above has been seen and dropped.
    save(watched.root / "run1" / "epoch_4" / "gt.npy")
    assert watched.changes.wait_for(lambda items: "run1/epoch_4/gt.npy" in items)
    assert set(watched.changes.items) <= {"run1", "run1/epoch_4", "run1/epoch_4/gt.npy"}


def test_polling_sees_a_new_file_within_a_couple_of_poll_intervals(watch):
    interval = 0.2
    watched = watch("polling", poll_interval=interval)
    delays = []
    for epoch in range(3):
        written = time.monotonic()
        save(watched.root / f"epoch_{epoch}" / "gt.npy")
        assert watched.changes.wait_for(lambda items, epoch=epoch: f"epoch_{epoch}/gt.npy" in items)
        delays.append(watched.changes.times[f"epoch_{epoch}/gt.npy"] - written)
    # One interval to the next poll at most; the second is headroom for a loaded machine.
    assert max(delays) < 2 * interval, delays


def test_failing_on_change_does_not_stop_later_hints(tmp_path):
    root = tmp_path / "dumps"
    root.mkdir()
    changes = Calls()

    def flaky(relative: str) -> None:
        changes(relative)
        if relative == "first.npy":
            raise RuntimeError("queue full")

    watcher = Watcher(root, kind="inotify", poll_interval=POLL, on_change=flaky, on_rescan_needed=Calls())
    watcher.start()
    try:
        save(root / "first.npy")
        assert changes.wait_for(lambda items: "first.npy" in items)
        save(root / "second.npy")
        assert changes.wait_for(lambda items: "second.npy" in items)
    finally:
        watcher.stop()


# --- lost events: the root and the observer ---------------------------------------------------------------


def test_root_replaced_at_once_asks_for_a_rescan_and_keeps_watching(watch):
    # inotify reports the deletion even when a new root is in place before anyone looks.
    watched = watch("inotify")
    save(watched.root / "run1" / "epoch_1" / "gt.npy")
    assert watched.changes.wait_for(lambda items: "run1/epoch_1/gt.npy" in items)
    shutil.rmtree(watched.root)
    watched.root.mkdir()
    save(watched.root / "run1" / "epoch_1" / "pred.npy")  # may be missed: this is what the rescan is for
    assert watched.rescans.wait_for(lambda items: len(items) == 1)
    assert "recreated" in watched.rescans.items[0]
    save(watched.root / "run1" / "epoch_2" / "gt.npy")
    assert watched.changes.wait_for(lambda items: "run1/epoch_2/gt.npy" in items)
    assert watched.watcher.watching


@pytest.mark.parametrize("kind", KINDS)
def test_root_deleted_then_recreated_asks_for_a_rescan_and_keeps_watching(watch, kind):
    watched = watch(kind)
    assert watched.watcher.watching
    shutil.rmtree(watched.root)
    assert wait_until(lambda: not watched.watcher.watching)
    watched.root.mkdir()
    assert watched.rescans.wait_for(lambda items: len(items) == 1)
    assert "recreated" in watched.rescans.items[0]
    save(watched.root / "run1" / "epoch_2" / "gt.npy")
    assert watched.changes.wait_for(lambda items: "run1/epoch_2/gt.npy" in items)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_dead_observer_thread_is_restarted_with_a_rescan(tmp_path, kind):
    root = tmp_path / "dumps"
    root.mkdir()
    changes, rescans = Calls(), Calls()

    def exits_once(relative: str) -> None:
        changes(relative)
        if relative == "first.npy":
            raise SystemExit  # not an Exception: it ends watchdog's dispatch thread, silently

    watcher = Watcher(root, kind=kind, poll_interval=POLL, on_change=exits_once, on_rescan_needed=rescans)
    watcher.start()
    try:
        save(root / "first.npy")
        assert rescans.wait_for(lambda items: len(items) == 1)
        assert "stopped unexpectedly" in rescans.items[0]
        save(root / "second.npy")
        assert changes.wait_for(lambda items: "second.npy" in items)
    finally:
        watcher.stop()


def test_missing_root_is_awaited_then_watched_with_a_rescan(watch):
    watched = watch("inotify", create_root=False)
    assert not watched.watcher.watching
    assert watched.rescans.items == []
    watched.root.mkdir()
    assert watched.rescans.wait_for(lambda items: len(items) == 1)
    assert "appeared" in watched.rescans.items[0]
    save(watched.root / "epoch_1" / "gt.npy")
    assert watched.changes.wait_for(lambda items: "epoch_1/gt.npy" in items)


@pytest.mark.parametrize("kind", KINDS)
def test_stop_joins_every_watcher_thread_and_is_idempotent(tmp_path, kind):
    root = tmp_path / "dumps"
    root.mkdir()
    changes = Calls()
    watcher = Watcher(root, kind=kind, poll_interval=POLL, on_change=changes, on_rescan_needed=Calls())
    before = set(threading.enumerate())
    watcher.start()
    started = set(threading.enumerate()) - before
    assert len(started) >= 3  # supervisor, dispatcher, emitter (and inotify's reader)
    watcher.stop()
    assert [thread.name for thread in started if thread.is_alive()] == []
    watcher.stop()
    with pytest.raises(RuntimeError):
        watcher.start()


def test_stop_before_start_is_harmless(tmp_path):
    watcher = Watcher(
        tmp_path, kind="inotify", poll_interval=POLL, on_change=Calls(), on_rescan_needed=Calls()
    )
    watcher.stop()
    watcher.stop()


# --- choosing the observer ---------------------------------------------------------------------------------


def mount_table(tmp_path: Path, *mounts: tuple[str, str]) -> Path:
    """A mount table file in /proc/self/mounts format, mount points escaped the way the kernel does."""
    lines = []
    for mount_point, fstype in mounts:
        escaped = mount_point.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
        lines.append(f"device{len(lines)} {escaped} {fstype} rw,relatime 0 0\n")
    path = tmp_path / "mounts"
    path.write_text("".join(lines))
    return path


def test_network_root_is_polled(tmp_path):
    share = tmp_path / "data"
    mounts = mount_table(tmp_path, ("/", "ext4"), (str(share), "nfs4"))
    kind, reason = choose_observer(share / "dumps", "auto", mounts)
    assert kind == "polling"
    assert "nfs4" in reason and "network filesystem" in reason and str(share) in reason


def test_local_root_uses_inotify(tmp_path):
    mounts = mount_table(tmp_path, ("/", "ext4"))
    kind, reason = choose_observer(tmp_path / "dumps", "auto", mounts)
    assert kind == "inotify"
    assert "ext4" in reason


def test_fuse_root_is_polled(tmp_path):
    mounts = mount_table(tmp_path, ("/", "ext4"), (str(tmp_path / "remote"), "fuse.sshfs"))
    kind, reason = choose_observer(tmp_path / "remote" / "dumps", "auto", mounts)
    assert kind == "polling"
    assert "fuse.sshfs" in reason


def test_longest_mount_point_prefix_wins(tmp_path):
    mounts = mount_table(
        tmp_path,
        ("/", "nfs"),
        (str(tmp_path / "scratch"), "ext4"),
        (str(tmp_path / "scratch" / "shared"), "lustre"),
        (str(tmp_path / "scratch" / "shared2"), "ext4"),  # a longer name, but not a path prefix of the root
    )
    assert choose_observer(tmp_path / "scratch" / "dumps", "auto", mounts)[0] == "inotify"
    kind, reason = choose_observer(tmp_path / "scratch" / "shared" / "dumps", "auto", mounts)
    assert kind == "polling"
    assert "lustre" in reason


def test_later_mount_on_the_same_point_hides_the_earlier_one(tmp_path):
    point = str(tmp_path / "data")
    mounts = mount_table(tmp_path, ("/", "ext4"), (point, "ext4"), (point, "cifs"))
    assert choose_observer(tmp_path / "data" / "dumps", "auto", mounts)[0] == "polling"


def test_escaped_spaces_in_mount_points_are_decoded(tmp_path):
    share = tmp_path / "my data"
    mounts = mount_table(tmp_path, ("/", "ext4"), (str(share), "cifs"))
    assert "\\040" in mounts.read_text()
    kind, reason = choose_observer(share / "dumps", "auto", mounts)
    assert kind == "polling"
    assert str(share) in reason


def test_root_is_resolved_through_symlinks_before_lookup(tmp_path):
    share = tmp_path / "share"
    (share / "dumps").mkdir(parents=True)
    (tmp_path / "link").symlink_to(share / "dumps")
    mounts = mount_table(tmp_path, ("/", "ext4"), (str(share), "nfs"))
    assert choose_observer(tmp_path / "link", "auto", mounts)[0] == "polling"


def test_explicit_choices_are_honoured(tmp_path):
    mounts = mount_table(tmp_path, ("/", "ext4"), (str(tmp_path / "data"), "nfs"))
    assert choose_observer(tmp_path / "dumps", "polling", mounts)[0] == "polling"
    kind, reason = choose_observer(tmp_path / "data", "inotify", mounts)
    assert kind == "inotify"
    assert "nfs" in reason  # honoured, but the reason keeps the warning
    with pytest.raises(ConfigError, match="fanotify"):
        choose_observer(tmp_path, "fanotify", mounts)  # type: ignore[arg-type]


def test_unreadable_mount_table_assumes_a_local_root(tmp_path):
    kind, reason = choose_observer(tmp_path, "auto", tmp_path / "no-such-mounts")
    assert kind == "inotify"
    assert "unreadable" in reason


# --- the scan rescans are built on -------------------------------------------------------------------------


# --- the scan rescans are built on -------------------------------------------------------------------------


def test_scan_tree_skips_hidden_entries_and_does_not_follow_symlinked_directories(tmp_path):
    root = tmp_path / "dumps"
    save(root / "run1" / "epoch_1" / "gt.npy")
    save(root / "run1" / ".epoch_2.tmp" / "gt.npy")
    save(root / "run1" / "epoch_1" / ".pred.npy.tmp")
    save(tmp_path / "outside" / "gt.npy")
    (root / "run1" / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    assert sorted(scan_tree(root)) == ["run1", "run1/epoch_1", "run1/epoch_1/gt.npy"]
