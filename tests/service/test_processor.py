"""Exactly once, whatever instant the process dies at between writing an epoch and committing it.

Each case kills a processor at one crash point, as SIGKILL would: a `ProcessDied` (a BaseException, so no
`except Exception` runs) is raised at a true boundary, the Sink protocol around a real EventSink or the ledger's
commit around a real Ledger. What the dead process flushed stays on disk and nothing else happens: no close, no
compaction. A fresh processor is then opened over the same logdir as start-up opens one (the ledger reconciled
with the event files, output/recovery.py), possibly dies again, and a last one finishes. Every (tag, step) must
then be in the event files exactly once, as TensorBoard's reader sees them, holding what a crash-free run
writes, and the ledger must agree. Everything is real: .npy files, the renderer, the ledger, the event files.

The kill -9 test in tests/e2e/test_daemon.py is the smoke test of the same over real processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from segwatch.config import Config, load_config
from segwatch.errors import Outcome
from segwatch.intake.layout import Artifact
from segwatch.output.ledger import Ledger
from segwatch.output.recovery import reconcile
from segwatch.output.sink import EVENT_FILE_MARK, EventSink, run_directory
from segwatch.plan import build_plan
from segwatch.service.processor import Processor
from segwatch.summaries import Summary

from conftest import raw_record_counts, read_event_tensors

RUNS, EPOCHS = ("a", "b"), (1, 2)
# Runs interleaved, as a live daemon meets them: the crash at `at=2` hits run a's second epoch, with both
# runs' first epochs committed before it.
ORDER = [(run, epoch) for epoch in EPOCHS for run in RUNS]

# Where the process dies. Sink points come in the `at`-th write of a pass, ledger points in its `at`-th commit.
SINK_POINTS = (
    "before-write",  # the epoch's summaries never reached the file (still in a buffer, say)
    "first-summary-out",  # a whole record with the first summary only
    "all-but-one-out",  # a whole record without the last summary
    "torn-length",  # the epoch's record cut inside its length field
    "torn-data",  # ... inside its data
    "torn-checksum",  # ... inside its trailing checksum
    "flushed",  # the write returned: the epoch is whole in the file
)
LEDGER_POINTS = (
    "before-commit",
    "torn-commit",  # half the journal line reached the disk
    "committed",  # the commit returned; the processor did not
)


# {run: {tag: [(step, serialized tensor)]}}
Logged = dict[str, dict[str, list[tuple[int, bytes]]]]


class ProcessDied(BaseException):
    """SIGKILL at the crash point: nothing after it runs."""


@dataclass(frozen=True)
class Crash:
    point: str
    at: int  # which write (sink points) or commit (ledger points) of the pass dies, 0 the first


class DyingSink:
    """A real EventSink that dies at `crash`, leaving the event file as such a death leaves it."""

    def __init__(self, inner: EventSink, crash: Crash | None) -> None:
        self.inner, self.logdir = inner, inner.logdir
        self.crash = crash if crash is not None and crash.point in SINK_POINTS else None
        self.writes = 0

    def write(self, run: str, step: int, summaries: Sequence[Summary]) -> None:
        call, self.writes = self.writes, self.writes + 1
        if self.crash is None or call != self.crash.at:
            self.inner.write(run, step, summaries)
            return
        point = self.crash.point
        if point == "before-write":
            raise ProcessDied(point)
        if point in ("first-summary-out", "all-but-one-out"):
            self.inner.write(run, step, summaries[:1] if point == "first-summary-out" else summaries[:-1])
            raise ProcessDied(point)
        before = event_file_sizes(run_directory(self.logdir, run))
        self.inner.write(run, step, summaries)
        if point.startswith("torn-"):
            (grown,) = [p for p, size in event_file_sizes(run_directory(self.logdir, run)).items()
                        if before.get(p) != size]  # fmt: skip
            tear_last_record(grown, point)
        raise ProcessDied(point)

    def close_idle(self, idle: float) -> int:
        return self.inner.close_idle(idle)

    def close(self) -> None:
        self.inner.close()


class DyingLedger(Ledger):
    """A real Ledger whose commit dies at `crash` (set after opening; recovery's commits count too)."""

    crash: Crash | None = None
    commits = 0

    def commit_all(self, run: str, epochs: list[int], *, fingerprint: str | None = None) -> None:
        call, self.commits = self.commits, self.commits + 1
        crash = self.crash
        if crash is None or crash.point not in LEDGER_POINTS or call != crash.at:
            super().commit_all(run, epochs, fingerprint=fingerprint)
            return
        if crash.point == "before-commit":
            raise ProcessDied(crash.point)
        super().commit_all(run, epochs, fingerprint=fingerprint)
        if crash.point == "torn-commit":
            journal = Path(self.journal_path)
            data = journal.read_bytes()
            assert data.endswith(b"\n")
            start = data.rfind(b"\n", 0, len(data) - 1) + 1
            journal.write_bytes(data[: start + (len(data) - start) // 2])
        raise ProcessDied(crash.point)


def event_file_sizes(directory: str) -> dict[Path, int]:
    return {
        path: path.stat().st_size for path in Path(directory).glob(f"events.out.tfevents.*{EVENT_FILE_MARK}")
    }


def tear_last_record(path: Path, point: str) -> None:
    """Cut the file's last TFRecord frame (length 8, its CRC 4, data, data CRC 4) where `point` says."""
    data = path.read_bytes()
    start = 0
    while True:
        end = start + 12 + int.from_bytes(data[start : start + 8], "little") + 4
        if end == len(data):
            break
        start = end
    keep = {"torn-length": 5, "torn-data": (12 + end - start - 4) // 2, "torn-checksum": end - start - 2}[
        point
    ]
    path.write_bytes(data[: start + keep])


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of two epochs, every array different, so every tag is written at every step."""
    root = tmp_path_factory.mktemp("dumps")
    rng = np.random.default_rng(13)
    for run, epoch in ORDER:
        directory = root / run / f"epoch_{epoch}"
        directory.mkdir(parents=True)
        for role in ("gt", "pred"):
            np.save(directory / f"{role}.npy", rng.integers(0, 5, size=(8, 8), dtype=np.uint8))
    return root


def artifacts(root: Path) -> list[Artifact]:
    return [
        Artifact(
            run,
            epoch,
            {role: (str(root / run / f"epoch_{epoch}" / f"{role}.npy"),) for role in ("gt", "pred")},
        )
        for run, epoch in ORDER
    ]


def run_pass(config: Config, crash: Crash | None) -> bool:
    """One process's life over the logdir: start-up recovery, then every artifact; True if it died."""
    logdir = config.tensorboard.logdir
    ledger = DyingLedger.open(logdir)
    ledger.crash = crash
    sink = DyingSink(EventSink(logdir), crash)
    try:
        processor = Processor(build_plan(config), sink, ledger, reconcile(ledger, logdir))
        for artifact in artifacts(Path(config.watch.root)):
            assert processor.process(artifact).outcome in (Outcome.LOGGED, Outcome.DONE)
    except ProcessDied:
        return True
    finally:
        sink.close()  # every byte was flushed by `write` already: closing adds none, as the kernel's would not
    ledger.close()
    return False


def logged(logdir: Path) -> Logged:
    """{run: {tag: [(step, tensor)]}} as TensorBoard's reader sees them; every record counted once raw."""
    found = {}
    for run in RUNS:
        counts = raw_record_counts(logdir / run)
        assert set(counts.values()) == {1}, {key: n for key, n in counts.items() if n != 1}
        found[run] = {
            tag: [(step, tensor.SerializeToString()) for step, tensor in events]
            for tag, events in read_event_tensors(logdir / run).items()
        }
    return found


def config_for(directory: Path, root: Path) -> Config:
    path = directory / "segwatch.yaml"
    settings = {"watch": {"root": str(root)}, "tensorboard": {"logdir": str(directory / "tb")}}
    # Small pictures and no confusion-matrix image: encoding them would be most of the test's time.
    cheap = {"compose": {"num_classes": 5, "size": [16, 16]}, "metrics": {"confusion_matrix": False}}
    path.write_text(yaml.safe_dump({**settings, **cheap}))
    return load_config(path, env={})


@pytest.fixture(scope="module")
def crash_free(dumps: Path, tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """What a process that never dies writes."""
    directory = tmp_path_factory.mktemp("crash-free")
    assert not run_pass(config_for(directory, dumps), None)
    found = logged(directory / "tb")
    # Images, scalars, text and the viewer's blobs, each at every step: the cases compare all of it.
    assert all(len(tags) > 10 for tags in found.values())
    assert {
        [step for step, _ in events] == list(EPOCHS) for tags in found.values() for events in tags.values()
    } == {True}
    return found


def assert_exactly_once(directory: Path, crash_free: Logged) -> None:
    assert logged(directory / "tb") == crash_free
    ledger = Ledger.open(directory / "tb")
    assert {run: (record.done, record.set_aside) for run, record in ledger.runs.items()} == {
        run: (set(EPOCHS), {}) for run in RUNS
    }


POINTS = SINK_POINTS + LEDGER_POINTS


@pytest.mark.parametrize("at", [0, 2], ids=["first-epoch", "with-history"])
@pytest.mark.parametrize("point", POINTS)
def test_one_death_then_a_restart_logs_every_epoch_exactly_once(tmp_path, dumps, crash_free, point, at):
    config = config_for(tmp_path, dumps)
    assert run_pass(config, Crash(point, at)), "the crash point was never reached: the case proves nothing"
    assert not run_pass(config, None)
    assert_exactly_once(tmp_path, crash_free)


# The first deaths that leave recovery something to do: records out but not all, a torn record, an epoch whole
# in the file but not recorded, a torn ledger line.
@pytest.mark.parametrize("second", POINTS)
@pytest.mark.parametrize("first", ["first-summary-out", "torn-data", "flushed", "torn-commit"])
def test_a_death_during_the_recovery_of_another_still_logs_every_epoch_exactly_once(
    tmp_path, dumps, crash_free, first, second
):
    config = config_for(tmp_path, dumps)
    assert run_pass(config, Crash(first, 2))
    # The restart's first write or commit: the epoch the first death left behind (the next one for a write,
    # when that epoch was whole in the file).
    assert run_pass(config, Crash(second, 0))
    assert not run_pass(config, None)
    assert_exactly_once(tmp_path, crash_free)
