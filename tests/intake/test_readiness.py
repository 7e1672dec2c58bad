import os

import numpy as np
import pytest

from segwatch.caps import Caps
from segwatch.intake.layout import DumpLayout
from segwatch.intake.readiness import Readiness


class Clock:
    """A hand-driven monotonic clock: readiness takes its clocks as parameters."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


# Caps no dump here comes near: a header's promise is then only ever waited for.
UNBOUNDED = Caps(max_file_bytes=2**63 - 1, max_pixels=2**63 - 1)


def make(clock, root, **kwargs):
    kwargs.setdefault("settle", 0.2)
    kwargs.setdefault("incomplete_timeout", 5.0)
    kwargs.setdefault("caps", UNBOUNDED)
    return Readiness(("gt", "pred"), clock=clock, root=root, **kwargs)


def save(root, relative, array, *, age=0.0):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    if age:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - int(age * 1e9)))
    return path


def note_all(readiness, root):
    layout = DumpLayout()
    for path in sorted(root.rglob("*.npy")):
        for key in layout.keys(path.relative_to(root).as_posix()):
            readiness.note(key, str(path))


def test_fresh_files_wait_for_the_settle_window(tmp_path, clock):
    readiness = make(clock, tmp_path)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8))
    save(tmp_path, "r/epoch_1/pred.npy", np.zeros((4, 4), np.uint8))
    note_all(readiness, tmp_path)
    assert readiness.ready() == []
    clock.now += 0.1
    assert readiness.ready() == []
    clock.now += 0.15
    (artifact,) = readiness.ready()
    assert (artifact.run, artifact.epoch) == ("r", 1)


def test_files_renamed_into_place_wait_one_window_however_old_their_mtime(tmp_path, clock):
    # An mtime 10 minutes behind (a server's clock, or a producer's utime) says nothing about our clock.
    readiness = make(clock, tmp_path)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8), age=600)
    save(tmp_path, "r/epoch_1/pred.npy", np.zeros((4, 4), np.uint8), age=600)
    note_all(readiness, tmp_path)
    assert readiness.ready() == []
    assert readiness.next_deadline() == pytest.approx(clock.now + 0.2)
    clock.now += 0.25
    assert len(readiness.ready()) == 1


def test_a_preallocated_file_filled_under_an_old_mtime_restarts_the_window(tmp_path, clock):
    readiness = make(clock, tmp_path)
    save(tmp_path, "r/epoch_1/gt.npy", np.ones((64, 64), np.uint8), age=600)
    pred_path = tmp_path / "r/epoch_1/pred.npy"
    pred = np.lib.format.open_memmap(
        pred_path, mode="w+", dtype=np.uint8, shape=(64, 64)
    )  # full size at once
    old = pred_path.stat().st_mtime_ns - 600 * 10**9
    os.utime(pred_path, ns=(old, old))
    note_all(readiness, tmp_path)
    clock.now += 0.15
    pred[:32] = 1  # the producer fills it, and keeps the mtime 10 minutes back (size and mtime unchanged)
    pred.flush()
    os.utime(pred_path, ns=(old, old))
    clock.now += 0.1
    assert readiness.ready() == []  # the ctime moved: 0.25 s after the first sight, 0.1 s after the change
    clock.now += 0.25
    assert len(readiness.ready()) == 1
    del pred


def test_an_unreadable_epoch_is_retried_with_backoff_and_reported_once(tmp_path, clock, caplog):
    readiness = make(clock, tmp_path)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8))
    save(tmp_path, "r/epoch_1/pred.npy", np.zeros((4, 4), np.uint8))
    note_all(readiness, tmp_path)
    delays = []
    for _ in range(8):
        readiness.wait("r", 1, "pred.npy: cannot open (Permission denied); will retry")
        delays.append(readiness.next_deadline() - clock.now)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert caplog.text.count("Permission denied") == 1
    note_all(readiness, tmp_path)  # a hint (the chmod that fixed it) looks again at once
    assert readiness.next_deadline() == clock.now


def test_a_change_restarts_the_settle_window(tmp_path, clock):
    readiness = make(clock, tmp_path)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8))
    pred = save(tmp_path, "r/epoch_1/pred.npy", np.zeros((4, 4), np.uint8))
    note_all(readiness, tmp_path)
    readiness.ready()
    clock.now += 0.15
    np.save(pred, np.zeros((8, 8), np.uint8))
    note_all(readiness, tmp_path)
    assert readiness.ready() == []
    clock.now += 0.15
    assert readiness.ready() == []  # 0.3 s after the first sight, but only 0.15 s after the change
    clock.now += 0.1
    assert len(readiness.ready()) == 1


def test_missing_role_waits_for_a_hint(tmp_path, clock):
    readiness = make(clock, tmp_path)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8), age=5)
    note_all(readiness, tmp_path)
    clock.now += 10
    assert readiness.ready() == [] and readiness.next_deadline() is None
    save(tmp_path, "r/epoch_1/pred.npy", np.zeros((4, 4), np.uint8), age=5)
    note_all(readiness, tmp_path)
    assert readiness.ready() == []  # complete now: one settle window from this first sight
    clock.now += 0.25
    assert len(readiness.ready()) == 1


def test_short_file_is_rechecked_slowly_then_reported_once(tmp_path, clock, caplog):
    readiness = make(clock, tmp_path, incomplete_timeout=3.0)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8), age=5)
    pred = save(tmp_path, "r/epoch_1/pred.npy", np.zeros((64, 64), np.uint8), age=5)
    with open(pred, "r+b") as handle:  # a writer that stopped half way
        handle.truncate(pred.stat().st_size // 2)
    os.utime(pred, (clock.now - 5, 1.0))
    note_all(readiness, tmp_path)
    assert readiness.ready() == []
    clock.now += 0.25
    assert readiness.ready() == []
    assert readiness.next_deadline() == pytest.approx(clock.now + 1.0)
    for _ in range(5):
        clock.now += 1.0
        assert readiness.ready() == []
    assert caplog.text.count("still incomplete") == 1
    assert readiness.next_deadline() is None  # no hot loop: only a new hint brings it back


def test_newer_epoch_waits_while_an_older_one_is_still_being_written(tmp_path, clock):
    readiness = make(clock, tmp_path)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8))  # epoch 1 still lacks pred
    save(tmp_path, "r/epoch_2/gt.npy", np.zeros((4, 4), np.uint8), age=5)
    save(tmp_path, "r/epoch_2/pred.npy", np.zeros((4, 4), np.uint8), age=5)
    save(tmp_path, "other/epoch_9/gt.npy", np.zeros((4, 4), np.uint8), age=5)
    save(tmp_path, "other/epoch_9/pred.npy", np.zeros((4, 4), np.uint8), age=5)
    note_all(readiness, tmp_path)
    assert readiness.ready() == []
    clock.now += 0.25
    assert [(a.run, a.epoch) for a in readiness.ready()] == [("other", 9)]
    readiness.forget("other", 9)
    for path in (tmp_path / "other").rglob("*.npy"):
        path.unlink()
    save(tmp_path, "r/epoch_1/pred.npy", np.zeros((4, 4), np.uint8))
    note_all(readiness, tmp_path)
    assert readiness.ready() == []  # epoch 1 settling holds epoch 2 back
    clock.now += 0.25
    assert [(a.run, a.epoch) for a in readiness.ready()] == [("r", 1), ("r", 2)]


def forged_npy(path, shape):
    """A .npy header promising `shape` of uint8, followed by almost no data."""
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 16)
    os.utime(path, (1.0, 1.0))


@pytest.mark.parametrize(
    ("caps", "handed_over"), [(UNBOUNDED, False), (Caps(max_file_bytes=1 << 20, max_pixels=2**63 - 1), True)]
)
def test_header_promising_terabytes_is_refused_not_waited_for(tmp_path, clock, caps, handed_over):
    readiness = make(clock, tmp_path, caps=caps)
    save(tmp_path, "r/epoch_1/gt.npy", np.zeros((4, 4), np.uint8), age=5)
    forged_npy(tmp_path / "r/epoch_1/pred.npy", (10**6, 10**6))
    note_all(readiness, tmp_path)
    assert readiness.ready() == []
    clock.now += 0.25
    # Without caps it looks like a file still being written; with them it goes to the processor at once,
    # which sets the epoch aside naming the reason.
    assert len(readiness.ready()) == (1 if handed_over else 0)


def test_an_archive_symlinked_from_outside_the_root_is_refused_unread(tmp_path, clock, caplog):
    # The archive outside the root is still being written (no directory yet): whatever it holds, reading it
    # would make the epoch wait for it. Refused unread, the epoch goes to the processor, which sets it aside
    # naming the reason, instead of waiting on a file the daemon must never read.
    root, outside = tmp_path / "dumps", tmp_path / "outside"
    outside.mkdir()
    (outside / "epoch_1.npz").write_bytes(b"PK\x03\x04" + bytes(64))
    (root / "r").mkdir(parents=True)
    link = root / "r" / "epoch_1.npz"
    link.symlink_to(outside / "epoch_1.npz")
    layout = DumpLayout("{run}/epoch_{epoch}.npz:{role}", required_roles=("gt", "pred"))
    readiness = make(clock, root, layout=layout, caps=Caps(max_file_bytes=1 << 20, max_pixels=1 << 20))
    for key in layout.keys("r/epoch_1.npz"):
        readiness.note(key, str(link))
    assert readiness.ready() == []
    clock.now += 0.25
    assert [(a.run, a.epoch) for a in readiness.ready()] == [("r", 1)]
    clock.now += 10
    readiness.ready()
    assert not [r for r in caplog.records if "still incomplete" in r.getMessage()]
