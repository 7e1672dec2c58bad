"""The deployment files run on this machine: the image's entrypoint as PID 1 on a read-only root, TensorBoard
with the manifest's arguments, and the classic sidecar's wrapper script, as written, around a real daemon. (The
files' static checks: tests/test_deploy.py and tests/test_manifests.py.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from deployfiles import (
    BIN,
    DEFAULT_GRACE,
    DOCKERFILE,
    containers,
    dockerfile_stages,
    find,
    image_config_source,
)
from segwatch.dump import save_epoch

from conftest import free_port

CLASSIC = "training-job-classic.yaml"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def write_epoch(root: Path, epoch: int, run: str = "exp") -> None:
    rng = np.random.default_rng(epoch)
    gt = rng.integers(0, 5, size=(2, 16, 24), dtype=np.uint8)
    save_epoch(root, epoch, gt=gt, pred=rng.integers(0, 5, size=(2, 16, 24)), run=run)


# --- the image's entrypoint -----------------------------------------------------------------------------


def entrypoint_environment(scratch: Path, dumps: Path, logdir: Path) -> tuple[list[str], dict[str, str]]:
    """The image's command and environment, mapped onto this machine: its venv is built the same way
    (`pip install` of the project), so /opt/segwatch/bin becomes this environment's bin directory."""
    final = dockerfile_stages(DOCKERFILE.read_text())[-1]
    env = {"LANG": "C.UTF-8"}
    for key, value in final.env.items():
        env[key] = value.replace("/opt/segwatch/bin", str(BIN)).replace("$PATH", os.environ["PATH"])
    env.update(
        HOME=str(scratch),
        TMPDIR=str(scratch),
        SEGWATCH_CONFIG=str(image_config_source(final)),
        SEGWATCH_HTTP__PORT="0",
        SEGWATCH_WATCH__ROOT=str(dumps),
        SEGWATCH_TENSORBOARD__LOGDIR=str(logdir),
    )
    entrypoint = yaml.safe_load(final.instructions["ENTRYPOINT"]) + yaml.safe_load(final.instructions["CMD"])
    program = shutil.which(entrypoint[0], path=env["PATH"])
    assert program is not None and Path(program).parent == BIN
    return [program, *entrypoint[1:]], env


def namespaces_available() -> str | None:
    """Why a read-only root in a new PID namespace cannot be made here, or None if it can."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create mount and PID namespaces: {probe.stderr.strip()}"
    return None


# Inside fresh mount and PID namespaces: the root read-only as with `docker run --read-only`, only the
# scratch directory (HOME, TMPDIR: the image's /tmp mount) and the logdir writable; then segwatch replaces
# the shell, so it is PID 1 as it is in the container.
CONTAINER_LIKE = """
set -e
mount --bind "$SCRATCH" "$SCRATCH"
mount --bind "$LOGDIR" "$LOGDIR"
mount -o remount,bind,ro /
exec "$@"
"""


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path
    pid: int

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_entrypoint(tmp_path: Path) -> Iterator[Callable[[bool], Started]]:
    started: list[Started] = []

    def start(container_like: bool) -> Started:
        scratch, dumps, logdir = tmp_path / "scratch", tmp_path / "dumps", tmp_path / "tb"
        for directory in (scratch, dumps, logdir):
            directory.mkdir(exist_ok=True)
        command, env = entrypoint_environment(scratch, dumps, logdir)
        if container_like:
            env.update(SCRATCH=str(scratch), LOGDIR=str(logdir))
            command = [
                "unshare", "--pid", "--fork", "--mount-proc", "--mount", "--propagation", "private",
                "sh", "-c", CONTAINER_LIKE, "sh", *command,
            ]  # fmt: skip
        log = tmp_path / "entrypoint.log"
        with open(log, "wb") as sink:
            process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
        pid = process.pid
        if container_like:
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            wait_for(lambda: children.read_text().strip() != "", 30, "the namespace's first process")
            pid = int(children.read_text().split()[0])
        run = Started(process, log, pid)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(timeout=30)


@pytest.mark.parametrize("container_like", [False, True], ids=["plain", "read-only-root-as-pid-1"])
def test_the_image_entrypoint_follows_a_dump_and_stops_cleanly_on_sigterm(
    tmp_path: Path, start_entrypoint: Callable[[bool], Started], container_like: bool
) -> None:
    if container_like and (reason := namespaces_available()):
        pytest.skip(reason)
    write_epoch(tmp_path / "dumps", 1)
    run = start_entrypoint(container_like)
    if container_like:
        status = Path(f"/proc/{run.pid}/status").read_text()
        ns_pid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        assert ns_pid is not None and ns_pid.group(1).split()[-1] == "1", status
    wait_for(lambda: "run=exp epoch=1 logged" in run.text(), 90, "epoch 1 to be logged")
    write_epoch(tmp_path / "dumps", 2)
    wait_for(lambda: "run=exp epoch=2 logged" in run.text(), 60, "epoch 2 to be logged")
    # As `docker stop` does: SIGTERM from outside the container to its PID 1.
    os.kill(run.pid, signal.SIGTERM)
    assert run.process.wait(timeout=DEFAULT_GRACE + 20) == 0, run.text()
    assert "Read-only file system" not in run.text()
    assert "stopped" in run.text()


# --- TensorBoard -------------------------------------------------------------------------------------------


def test_tensorboard_starts_with_the_manifest_arguments(tmp_path: Path) -> None:
    container = find("Deployment", "tensorboard")["spec"]["template"]["spec"]["containers"][0]
    port = free_port()
    # This machine's loopback instead of every interface; the logdir a temporary directory.
    args = [
        f"--logdir={tmp_path}" if arg.startswith("--logdir=")
        else f"--port={port}" if arg.startswith("--port=")
        else "--host=127.0.0.1" if arg == "--bind_all"
        else arg
        for arg in container["command"][1:]
    ]  # fmt: skip
    program = shutil.which(container["command"][0], path=str(BIN))
    assert program is not None
    with open(tmp_path / "tensorboard.log", "wb") as log:
        process = subprocess.Popen([program, *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:

        def serving() -> bool:
            assert process.poll() is None, (tmp_path / "tensorboard.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/environment", timeout=5) as reply:
                    return bool(reply.status == 200)
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(serving, 90, "TensorBoard to serve")
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- the classic wrapper ---------------------------------------------------------------------------------


@pytest.fixture
def wrapper(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], tuple[subprocess.Popen[bytes], Path]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
        config_file = tmp_path / "segwatch.yaml"
        config_file.write_text(yaml.safe_dump(settings))
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "SEGWATCH_CONFIG": str(config_file),
            "DONE_FILE": str(tmp_path / "dumps" / ".training-done"),
        }
        log = tmp_path / "wrapper.log"
        script = containers(find("Job", file=CLASSIC))["segwatch"]["command"][2]
        with open(log, "wb") as sink:
            process = subprocess.Popen(["sh", "-c", script], env=env, stdout=sink, stderr=sink)
        started.append(process)
        return process, log

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def segwatch_children(pid: int) -> list[int]:
    """The wrapper's `segwatch run` (not the `sleep` it may be in at the moment)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with open(f"/proc/{child}/cmdline", "rb") as cmdline:
            if b"segwatch" in cmdline.read():
                found.append(int(child))
    return found


def test_the_classic_wrapper_exits_0_after_a_bad_config_without_restarting_it(tmp_path, wrapper) -> None:
    (tmp_path / "dumps").mkdir()
    process, log = wrapper({"watch": {"root": str(tmp_path / "dumps")}, "tensorboard": {}})
    wait_for(lambda: "exited with status 2" in log.read_text(), 60, "segwatch to refuse its config")
    time.sleep(1.5)
    assert process.poll() is None, "the wrapper waits for the end of training"
    (tmp_path / "dumps" / ".training-done").touch()
    assert process.wait(timeout=30) == 0, log.read_text()
    assert log.read_text().count("exited with status 2") == 1


def test_the_classic_wrapper_restarts_a_crashed_segwatch_and_still_exits_0(tmp_path, wrapper) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    process, log = wrapper({"watch": {"root": str(dumps)}, "tensorboard": {"logdir": str(tmp_path / "tb")}})
    wait_for(lambda: "watching" in log.read_text(), 90, "segwatch to start")
    (first,) = segwatch_children(process.pid)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: "exited with status 137" in log.read_text(), 30, "the wrapper to notice the crash")
    wait_for(lambda: log.read_text().count("caught up") == 2, 90, "the restarted segwatch to catch up")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(2, 8, 8), dtype=np.uint8)
    save_epoch(dumps, 1, gt=labels, pred=labels, run="exp")
    wait_for(lambda: "run=exp epoch=1 logged" in log.read_text(), 60, "epoch 1 to be logged")
    (dumps / ".training-done").touch()
    assert process.wait(timeout=90) == 0, log.read_text()
    assert "stopped" in log.read_text()


def test_the_classic_wrapper_stops_segwatch_once_training_is_done(tmp_path: Path, wrapper) -> None:
    """The classic variant's shell wrapper, run as written, around a real daemon.

    The config has no http section (the endpoint is off by default), so the wrapper's `/idle` call fails at
    once, and a settle window longer than the wrapper's polling keeps `segwatch run` from logging the last
    epoch before it is stopped: as on a loaded machine, only the wrapper's final catch-up can log it."""
    dumps, logdir = tmp_path / "dumps", tmp_path / "tb"
    dumps.mkdir()
    write_epoch(dumps, 1)
    process, log = wrapper(
        {"watch": {"root": str(dumps), "settle": "6s"}, "tensorboard": {"logdir": str(logdir)}}
    )
    wait_for(lambda: "run=exp epoch=1 logged" in log.read_text(), 90, "epoch 1 to be logged")
    assert process.poll() is None
    write_epoch(dumps, 2)
    (dumps / ".training-done").touch()
    assert process.wait(timeout=90) == 0, log.read_text()
    # Epoch 2 arrived with the done file; it is logged before the wrapper exits, and epoch 1 only once.
    text = log.read_text()
    assert "run=exp epoch=2 logged" in text, text
    assert text.count("run=exp epoch=1 logged") == 1, text
    assert "stopped" in text


def test_the_classic_wrapper_passes_sigterm_on(tmp_path: Path, wrapper) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    process, log = wrapper({"watch": {"root": str(dumps)}, "tensorboard": {"logdir": str(tmp_path / "tb")}})
    wait_for(lambda: "watching" in log.read_text(), 90, "segwatch to start watching")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=DEFAULT_GRACE + 20) == 0, log.read_text()
    assert "stopped" in log.read_text()
