"""A real `tensorboard` process for the e2e tests: on a free loopback port, its stderr in a log file that every
failure quotes, polled until it serves what a test waits for, and always stopped."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from conftest import free_port

T = TypeVar("T")


class Board:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process, self.port, self.log_path = process, port, log_path
        self.url = f"http://127.0.0.1:{port}"

    def until(self, fetch: Callable[[], T], done: Callable[[T], bool], timeout: float, empty: T) -> T:
        """Call `fetch` until `done` holds for what it returns, or `timeout` seconds pass; returns the last
        answer (`empty` if none came: not serving yet is retried). Fails at once if TensorBoard exited."""
        deadline = time.monotonic() + timeout
        found = empty
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                found = fetch()
                if done(found):
                    break
            assert self.process.poll() is None, self.log_path.read_text()
            time.sleep(0.3)
        return found


@contextlib.contextmanager
def tensorboard(logdir: Path, log_path: Path, *flags: str, binary: Path | None = None) -> Iterator[Board]:
    """`tensorboard --logdir logdir` (this environment's, or `binary`) with `flags`, on 127.0.0.1."""
    port = free_port()
    program = binary or Path(sys.executable).parent / "tensorboard"
    with open(log_path, "wb") as server_log:
        process = subprocess.Popen(
            [str(program), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port), *flags],
            stdout=subprocess.DEVNULL,
            stderr=server_log,
        )
    try:
        yield Board(process, port, log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)
