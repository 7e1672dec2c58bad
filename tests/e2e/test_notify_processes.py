"""sd_notify from real processes: a child reading NOTIFY_SOCKET from its environment, and `segwatch run` telling
a service manager (a real AF_UNIX socket standing in for systemd) it is ready, alive and stopping."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from segwatch.dump import save_epoch

from conftest import NotifyListener


def test_a_child_process_reads_the_environment_and_sends_with_its_own_credentials(
    listener: NotifyListener,
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


def receive_until(listener: NotifyListener, done: Callable[[list[str]], bool], timeout: float) -> list[str]:
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
    listener: NotifyListener, tmp_path: Path
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
