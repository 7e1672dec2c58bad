"""A session driven by its `tick`, in process: real dump files, a real observer, a real ledger and event files."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from segwatch.config import load_config
from segwatch.dump import save_epoch
from segwatch.output.ledger import open_ledger
from segwatch.output.lock import Locks
from segwatch.service.health import Health
from segwatch.service.notify import Notifier
from segwatch.service.reporter import Reporter
from segwatch.service.session import Session

from conftest import raw_record_counts

SMALL = {"layout": "pair", "size": [8, 8], "panels": ["gt", "pred"], "legend": "none"}


def write_epoch(root: Path, epoch: int, run: str = "exp") -> None:
    labels = np.random.default_rng(epoch).integers(0, 5, size=(2, 8, 8), dtype=np.uint8)
    directory = save_epoch(root, epoch, gt=labels, pred=labels.astype(np.int64), run=run)
    for path in directory.iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))


@pytest.fixture
def session_for(tmp_path: Path, write_config) -> Iterator[Callable[..., Session]]:
    locks = Locks("run")
    sessions: list[Session] = []

    def make(*, interrupted_when: Callable[[Reporter], bool] = lambda reporter: False) -> Session:
        config = load_config(
            write_config(
                watch={"settle": 0.1, "observer": "polling", "poll_interval": 0.1},
                compose=SMALL,
                metrics={"enabled": False},
            )
        )
        reporter = Reporter(Health(), Notifier(None))
        session = Session(
            config, locks=locks, reporter=reporter, interrupted=lambda: interrupted_when(reporter)
        )
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()
    locks.release()


def tick_until(session: Session, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        assert session.tick(), session.restart
        session.pause()


def test_ticks_log_the_backlog_then_a_new_epoch_and_the_session_ends_when_its_logdir_is_deleted(
    tmp_path: Path, session_for
) -> None:
    root = tmp_path / "dumps"
    for epoch in (1, 2):
        write_epoch(root, epoch)
    session = session_for()
    session.start()
    reporter = session.reporter
    tick_until(session, lambda: reporter.caught_up)
    assert reporter.status.last_logged["exp"][0] == 2

    write_epoch(root, 3)
    tick_until(session, lambda: reporter.status.last_logged["exp"][0] == 3)
    assert open_ledger(str(tmp_path / "tb")).runs["exp"].done == {1, 2, 3}
    counts = raw_record_counts(tmp_path / "tb" / "exp")
    assert {step for _, step in counts} == {1, 2, 3} and set(counts.values()) == {1}

    shutil.rmtree(tmp_path / "tb")
    deadline = time.monotonic() + 30
    while session.tick():
        assert time.monotonic() < deadline, "the deleted logdir went unnoticed"
        session.pause()
    assert session.restart == "logdir replaced"


def test_an_interrupted_session_stops_between_artifacts_and_the_next_one_logs_the_rest(
    tmp_path: Path, session_for
) -> None:
    root = tmp_path / "dumps"
    for epoch in (1, 2, 3):
        write_epoch(root, epoch)
    # A stop or reload requested as soon as the first epoch is logged: the rest stays for the next session.
    first = session_for(interrupted_when=lambda reporter: "exp" in reporter.status.last_logged)
    first.start()
    tick_until(first, lambda: "exp" in first.reporter.status.last_logged)
    for _ in range(5):
        first.tick()
    assert first.reporter.status.last_logged["exp"][0] == 1
    first.close()
    assert open_ledger(str(tmp_path / "tb")).runs["exp"].done == {1}

    second = session_for()
    second.start()
    tick_until(second, lambda: second.reporter.caught_up)
    assert open_ledger(str(tmp_path / "tb")).runs["exp"].done == {1, 2, 3}
    assert second.reporter.status.last_logged["exp"][0] == 3
