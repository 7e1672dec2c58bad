"""The reporter: what the daemon reports reaches the log, the health endpoints and sd_notify together, and all
three tell the status from one model."""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from segwatch.errors import Outcome, Result
from segwatch.intake.layout import Artifact
from segwatch.service.health import Health
from segwatch.service.notify import Notifier
from segwatch.service.reporter import Reporter
from segwatch.service.status import Status

from conftest import Clock


@pytest.fixture
def manager() -> Iterator[socket.socket]:
    """The service manager's end of $NOTIFY_SOCKET: a real datagram socket (AF_UNIX paths are short)."""
    directory = Path(tempfile.mkdtemp(prefix="sdr-"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(directory / "notify"))
    sock.settimeout(5.0)
    try:
        yield sock
    finally:
        sock.close()
        (directory / "notify").unlink()
        directory.rmdir()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting, in order."""
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(5.0)


def statuses(messages: list[str]) -> list[str]:
    return [
        field[len("STATUS=") :] for m in messages for field in m.split("\n") if field.startswith("STATUS=")
    ]


@pytest.fixture
def reporter(manager: socket.socket) -> Iterator[Reporter]:
    wall = Clock(1000.0)
    health = Health(stale_after=30.0, wall_clock=wall)
    notifier = Notifier(manager.getsockname())
    yield Reporter(health, notifier, clock=Clock(50.0), wall_clock=wall)
    notifier.close()


def artifact(run: str, epoch: int) -> Artifact:
    return Artifact(run, epoch, {"gt": ("gt.npy",), "pred": ("pred.npy",)})


def metric(health: Health, line_start: str) -> str:
    text = health.metrics().body.decode()
    return next(line for line in text.splitlines() if line.startswith(line_start))


def test_start_up_then_ready_then_a_failing_output_reach_every_audience_alike(
    reporter: Reporter, manager: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="segwatch")
    health = reporter.health
    reporter.session_started(status_interval=0, retention=False, last_epochs={"b": 7})

    reporter.round_done(2, settled=False)
    assert statuses(received(manager)) == ["backlog 2 epochs; last logged: b@7"]
    assert health.readyz().status == 503 and not reporter.caught_up

    reporter.handled(artifact("a", 3), Result(Outcome.LOGGED), 0.5, first=True)
    reporter.round_done(0, settled=True)
    messages = received(manager)
    assert messages[0] == "READY=1\nSTATUS=backlog 0 epochs; last logged: a@3, b@7"
    assert health.readyz().status == 200
    assert "caught up: backlog 0 epochs; last logged: a@3 (0 s ago), b@7 (before start-up)" in caplog.text
    assert metric(health, 'segwatch_last_logged_epoch{run="a"}') == 'segwatch_last_logged_epoch{run="a"} 3.0'

    reporter.output_failed(artifact("a", 4), "tb/a: cannot write summaries: disk full", 2.0)
    reporter.round_done(1, settled=True)
    failing = (
        "backlog 1 epochs; last logged: a@3, b@7; output failing: tb/a: cannot write summaries: disk full"
    )
    assert statuses(received(manager)) == [failing]
    assert health.readyz().body.decode() == "output failing: tb/a: cannot write summaries: disk full\n"
    assert "run=a epoch=4 pending, output failing (retry in 2.0 s)" in caplog.text

    reporter.handled(artifact("a", 4), Result(Outcome.LOGGED), 0.5, first=True)
    reporter.round_done(0, settled=True)
    assert statuses(received(manager)) == ["backlog 0 epochs; last logged: a@4, b@7"]
    assert health.readyz().status == 200 and "output writable again" in caplog.text

    reporter.stopping()
    assert received(manager) == ["STOPPING=1"]
    assert health.readyz().body.decode() == "stopping\n"


def test_a_reload_announces_ready_again_without_a_second_caught_up_line(
    reporter: Reporter, manager: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="segwatch")
    reporter.session_started(status_interval=0, retention=False, last_epochs={})
    reporter.round_done(0, settled=True)
    reporter.reloading()
    reporter.session_started(status_interval=0, retention=False, last_epochs={})
    reporter.round_done(0, settled=True)
    messages = received(manager)
    assert [m.split("\n")[0] for m in messages if m.startswith(("READY", "RELOADING"))] == [
        "READY=1",
        "RELOADING=1",
        "READY=1",
    ]
    assert caplog.text.count("caught up") == 1


def test_a_late_epoch_is_reported_once_and_a_redump_is_counted(
    reporter: Reporter, caplog: pytest.LogCaptureFixture
) -> None:
    late = Result(Outcome.LATE, "epoch 2 is older than epoch 5, already written")
    reporter.handled(artifact("a", 2), late, 0.0, first=True)
    reporter.handled(artifact("a", 2), late, 0.0, first=False)
    assert caplog.text.count("run=a epoch=2 skipped") == 1
    reporter.handled(artifact("a", 5), Result(Outcome.DONE, redumped=True), 0.0, first=True)
    assert metric(reporter.health, "segwatch_epochs_redumped_total") == "segwatch_epochs_redumped_total 1.0"


def test_unmatched_files_are_warned_once_and_their_end_is_said(
    reporter: Reporter, manager: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="segwatch")
    problem = "none of the 2 .npy/.npz files under watch.root /d matches the configured patterns"
    reporter.coverage("/d", 2, problem)
    reporter.coverage("/d", 2, problem)
    reporter.round_done(0, settled=True)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [problem]
    assert statuses(received(manager)) == [f"backlog 0 epochs; last logged: none yet; {problem}"]
    assert reporter.health.readyz().body.decode() == f"ready: the start-up scan is done; warning: {problem}\n"
    reporter.coverage("/d", 0, "")
    assert "dump files under watch.root /d match the patterns now" in caplog.text
    assert reporter.health.readyz().body.decode() == "ready: the start-up scan is done\n"


def test_removed_dump_files_add_up_in_the_status_and_the_metrics(reporter: Reporter) -> None:
    reporter.session_started(status_interval=0, retention=True, last_epochs={})
    reporter.removed("a", 1, 2, 300)
    reporter.removed("a", 2, 2, 100)
    assert reporter.status.summary().endswith("; removed 4 dump files")
    assert reporter.status.detail(1000.0).endswith("; removed 4 dump files (400 bytes)")
    assert (
        metric(reporter.health, "segwatch_dump_bytes_removed_total")
        == "segwatch_dump_bytes_removed_total 400.0"
    )


def test_the_status_names_the_backlog_and_each_runs_last_epoch() -> None:
    assert Status().summary() == "backlog 0 epochs; last logged: none yet"
    status = Status(backlog=3, last_logged={"b": (7, 1.0), "": (2, None), "a": (12, 3.0)})
    status.output_failing_since = 990.0
    assert status.summary() == "backlog 3 epochs; last logged: .@2, a@12, b@7; output failing"
    assert status.detail(1000.0) == (
        "backlog 3 epochs; last logged: .@2 (before start-up), a@12 (997 s ago), b@7 (999 s ago); "
        "output failing for 10 s"
    )
