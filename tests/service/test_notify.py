"""sd_notify: real AF_UNIX datagram sockets (path and abstract), keep-alive pacing. The child processes that
send to them are in tests/e2e/test_notify_processes.py."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from segwatch.service.notify import Notifier, watchdog_interval_from

from conftest import NotifyListener


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def closing() -> Iterator[list[Notifier]]:
    """Notifiers to close after the test (each holds a socket once it has sent)."""
    notifiers: list[Notifier] = []
    yield notifiers
    for notifier in notifiers:
        notifier.close()


@pytest.fixture
def abstract_listener() -> Iterator[NotifyListener]:
    name = f"segwatch-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield NotifyListener(sock, "@" + name)
    finally:
        sock.close()


def test_without_notify_socket_every_call_is_a_silent_no_op() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("up")
    notifier.reloading()
    notifier.stopping()
    assert notifier.status("x") is False
    assert notifier.keepalive() is False
    assert notifier.keepalive_due_in() is None


def test_ready_with_a_status_is_one_datagram_on_a_path_socket(listener: NotifyListener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.env_address})
    notifier.ready("backlog 0 epochs; last logged: exp@3")
    assert listener.receive() == "READY=1\nSTATUS=backlog 0 epochs; last logged: exp@3"
    notifier.close()


def test_an_abstract_socket_address_starting_with_at_is_reached(abstract_listener: NotifyListener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": abstract_listener.env_address})
    notifier.ready()
    notifier.stopping()
    assert abstract_listener.receive() == "READY=1"
    assert abstract_listener.receive() == "STOPPING=1"
    notifier.close()


def test_status_is_sent_only_when_it_changes_and_stays_on_one_line(
    listener: NotifyListener, closing: list[Notifier]
) -> None:
    notifier = Notifier(listener.env_address)
    closing.append(notifier)
    assert notifier.status("backlog 2 epochs") is True
    assert notifier.status("backlog 2 epochs") is False
    assert notifier.status("backlog 1 epochs\nlast logged: a@4") is True
    assert listener.receive() == "STATUS=backlog 2 epochs"
    assert listener.receive() == "STATUS=backlog 1 epochs last logged: a@4"
    assert listener.nothing_waiting()


def test_keepalives_extend_the_start_timeout_then_ping_the_watchdog_at_half_its_interval(
    listener: NotifyListener, closing: list[Notifier]
) -> None:
    clock = Clock()
    notifier = Notifier(listener.env_address, watchdog_interval=10.0, start_extension=60.0, clock=clock)
    closing.append(notifier)
    # Catching up: each keep-alive pushes the start-up timeout 60 s on, every 30 s of progress.
    assert notifier.keepalive() is True
    assert listener.receive() == "EXTEND_TIMEOUT_USEC=60000000"
    clock.now += 29.0
    assert notifier.keepalive() is False
    clock.now += 1.0
    assert notifier.keepalive() is True
    assert listener.receive() == "EXTEND_TIMEOUT_USEC=60000000"

    notifier.ready()
    assert listener.receive() == "READY=1"
    assert notifier.keepalive_due_in() == pytest.approx(5.0)
    clock.now += 4.9
    assert notifier.keepalive() is False
    clock.now += 0.1
    assert notifier.keepalive() is True
    assert listener.receive() == "WATCHDOG=1"
    # A loop that stops calling keepalive stops the pings: that is what the watchdog is for.
    clock.now += 100.0
    assert notifier.keepalive_due_in() is not None and notifier.keepalive_due_in() < 0

    notifier.stopping()
    assert listener.receive() == "STOPPING=1"
    assert notifier.keepalive() is False
    assert listener.nothing_waiting()


def test_without_a_watchdog_there_are_no_pings_after_ready(
    listener: NotifyListener, closing: list[Notifier]
) -> None:
    clock = Clock()
    notifier = Notifier(listener.env_address, clock=clock)
    closing.append(notifier)
    notifier.ready()
    clock.now += 3600
    assert notifier.keepalive() is False
    assert listener.receive() == "READY=1"
    assert listener.nothing_waiting()


def test_a_reload_says_reloading_with_the_monotonic_clock_then_ready_again(
    listener: NotifyListener, closing: list[Notifier]
) -> None:
    clock = Clock()
    notifier = Notifier(listener.env_address, watchdog_interval=4.0, clock=clock)
    closing.append(notifier)
    notifier.ready()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert listener.receive() == "READY=1"
    first, second = listener.receive().split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=")
    assert before <= int(second.removeprefix("MONOTONIC_USEC=")) <= after
    # While reloading the start-up rules apply again; READY=1 brings the watchdog back.
    assert notifier.keepalive() is True
    assert listener.receive().startswith("EXTEND_TIMEOUT_USEC=")
    notifier.ready()
    assert listener.receive() == "READY=1"


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_is_for_the_process_it_names(
    environ: dict[str, str], interval: float | None
) -> None:
    assert watchdog_interval_from(environ, pid=4242) == interval


def test_a_malformed_watchdog_interval_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="segwatch.service.notify"):
        assert watchdog_interval_from({"WATCHDOG_USEC": "30s"}, pid=1) is None
    assert "WATCHDOG_USEC='30s'" in caplog.text


def test_an_unreachable_manager_is_reported_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.WARNING, logger="segwatch.service.notify"):
        assert notifier.send("READY=1") is False
        assert notifier.send("WATCHDOG=1") is False
    warnings = [record for record in caplog.records if "cannot notify" in record.getMessage()]
    assert len(warnings) == 1
    assert "nobody-listens" in warnings[0].getMessage()
    notifier.close()


# --- the daemon speaking to a service manager ---------------------------------------------------------
