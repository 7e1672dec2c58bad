"""sd_notify: real AF_UNIX datagram sockets (path and abstract), real child processes, keep-alive pacing."""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from segwatch.dump import save_epoch
from segwatch.service.notify import Notifier, watchdog_interval_from


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Listener:
    """The service manager's end: a bound datagram socket that collects what arrives."""

    def __init__(self, sock: socket.socket, env_address: str) -> None:
        self.sock = sock
        self.env_address = env_address
        sock.settimeout(5.0)

    def receive(self) -> str:
        return self.sock.recv(4096).decode()

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5.0)
        return False


@pytest.fixture
def closing() -> Iterator[list[Notifier]]:
    """Notifiers to close after the test (each holds a socket once it has sent)."""
    notifiers: list[Notifier] = []
    yield notifiers
    for notifier in notifiers:
        notifier.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    # AF_UNIX paths are limited to 108 bytes, which a pytest tmp_path can exceed: use a short directory.
    directory = Path(tempfile.mkdtemp(prefix="sdn-"))
    path = directory / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield Listener(sock, str(path))
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        directory.rmdir()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"segwatch-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield Listener(sock, "@" + name)
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


def test_ready_with_a_status_is_one_datagram_on_a_path_socket(listener: Listener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.env_address})
    notifier.ready("backlog 0 epochs; last logged: exp@3")
    assert listener.receive() == "READY=1\nSTATUS=backlog 0 epochs; last logged: exp@3"
    notifier.close()


def test_an_abstract_socket_address_starting_with_at_is_reached(abstract_listener: Listener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": abstract_listener.env_address})
    notifier.ready()
    notifier.stopping()
    assert abstract_listener.receive() == "READY=1"
    assert abstract_listener.receive() == "STOPPING=1"
    notifier.close()


def test_a_child_process_reads_the_environment_and_sends_with_its_own_credentials(
    listener: Listener,
) -> None:
    # systemd accepts a message from the main PID only (NotifyAccess=main), known from SCM_CREDENTIALS.
    listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    code = "from segwatch.service.notify import Notifier; Notifier.from_env().ready('child up')"
    child = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "NOTIFY_SOCKET": listener.env_address},
        timeout=60,
        check=True,
        capture_output=True,
    )
    assert child.returncode == 0
    message, ancillary, _, _ = listener.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    assert message == b"READY=1\nSTATUS=child up"
    (level, kind, data) = ancillary[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
    pid, uid, _gid = struct.unpack("3i", data[: struct.calcsize("3i")])
    assert pid != os.getpid() and pid > 0
    assert uid == os.getuid()


def test_status_is_sent_only_when_it_changes_and_stays_on_one_line(
    listener: Listener, closing: list[Notifier]
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
    listener: Listener, closing: list[Notifier]
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
    listener: Listener, closing: list[Notifier]
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
    listener: Listener, closing: list[Notifier]
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


def receive_until(listener: Listener, done: Callable[[list[str]], bool], timeout: float) -> list[str]:
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        listener.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            messages.append(listener.receive())
        except TimeoutError:
            raise AssertionError(f"after {timeout:.0f} s, only {messages}") from None
    return messages


def test_segwatch_run_tells_the_manager_ready_status_watchdog_and_stopping(
    listener: Listener, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    gt, pred = rng.integers(0, 5, (2, 8, 8)), rng.integers(0, 5, (2, 8, 8))
    save_epoch(tmp_path / "dumps", 1, gt=gt, pred=pred, run="exp")
    config = tmp_path / "segwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {"watch": {"root": str(tmp_path / "dumps")}, "tensorboard": {"logdir": str(tmp_path / "tb")}}
        )
    )
    log = tmp_path / "daemon.log"
    env = {**os.environ, "NOTIFY_SOCKET": listener.env_address, "WATCHDOG_USEC": "2000000"}
    with open(log, "wb") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "segwatch", "run", "--config", str(config)],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    try:
        # READY=1 comes after the catch-up: the epoch already on disk is logged by then.
        deadline = time.monotonic() + 90
        while "run=exp epoch=1 logged" not in log.read_text():
            assert time.monotonic() < deadline and daemon.poll() is None, log.read_text()
            time.sleep(0.1)
        start = receive_until(listener, lambda got: any(m.startswith("READY=1") for m in got), 10)
        # WATCHDOG_USEC of 2 s: a ping every second while the loop runs.
        began = time.monotonic()
        running = receive_until(listener, lambda got: got.count("WATCHDOG=1") >= 2, 5)
        assert time.monotonic() - began < 4
        daemon.send_signal(signal.SIGTERM)
        stopping = receive_until(listener, lambda got: "STOPPING=1" in got, 10)
        assert daemon.wait(timeout=30) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=30)
    messages = start + running + stopping
    assert all("WATCHDOG=1" not in m for m in start)
    statuses = [m for m in messages if "STATUS=" in m]
    assert statuses and "backlog" in statuses[-1]
    assert messages[-1] == "STOPPING=1"
