"""deploy/systemd/segwatch@.service under a real systemd, as PID 1 of a podman container (`--systemd=always`).

The instances are made by running deploy/README.md's own commands. Shown: two instances both start and serve;
`systemctl start` returns once the start-up catch-up is done (READY=1); a stuck daemon is killed by the
watchdog and restarted; a crash is restarted; exit status 2 (a bad config) is not.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import REPO, RUN_OPTIONS, image, podman, podman_ready, systemd_base

pytestmark = [pytest.mark.timeout(900), pytest.mark.usefixtures("podman_ready")]
FIXTURES = (image, podman_ready)  # pytest finds fixtures by name in the module

DEPLOY_README = REPO / "deploy" / "README.md"
WRITE_EPOCHS = """
import sys
import numpy as np
from segwatch.dump import save_epoch
root, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for epoch in range(first, last + 1):
    labels = np.random.default_rng(epoch).integers(0, 19, size=(2, 32, 32), dtype=np.uint8)
    save_epoch(root, epoch, gt=labels, pred=labels, run="train")
"""


def readme_block(starting: str) -> str:
    """The shell block of deploy/README.md whose first line starts with `starting`."""
    for block in re.findall(r"```sh\n(.*?)```", DEPLOY_README.read_text(), flags=re.S):
        if block.startswith(starting):
            return str(block)
    raise AssertionError(f"deploy/README.md has no sh block starting with {starting!r}")


@pytest.fixture(scope="module")
def systemd_image(image: tuple[str, float]) -> str:
    """Debian with systemd, the image's /opt/segwatch, and the repository's deploy/ at /src/deploy."""
    base = systemd_base()
    tag = "localhost/segwatch-test-systemd:latest"
    with tempfile.TemporaryDirectory(prefix="segwatch-systemd-") as scratch:
        Path(scratch, "Containerfile").write_text(
            f"FROM {base}\n"
            f"COPY --from={image[0]} /opt/segwatch /opt/segwatch\n"
            "COPY deploy /src/deploy\n"
            # The console log would otherwise be the only sign of a unit's output: journald keeps it.
            'CMD ["/sbin/init"]\n'
        )
        podman(
            "build", *RUN_OPTIONS, "--file", f"{scratch}/Containerfile", "--tag", tag, str(REPO), timeout=600
        )
    return tag


@pytest.fixture(scope="module")
def machine(systemd_image: str) -> Iterator[str]:
    """A running systemd, with the README's once-per-machine steps done (the venv comes from the image)."""
    name = f"segwatch-systemd-{uuid.uuid4().hex[:8]}"
    podman("run", "--detach", "--name", name, "--systemd=always", *RUN_OPTIONS, systemd_image, timeout=120)
    try:
        deadline = time.monotonic() + 60
        while run(name, "systemctl is-system-running", check=False).stdout.strip() not in (
            "running",
            "degraded",
        ):
            assert time.monotonic() < deadline, "systemd did not come up"
            time.sleep(0.5)
        steps = [
            line for line in readme_block("python3 -m venv").splitlines() if "python3 -m venv" not in line
        ]
        run(name, "\n".join(["set -e", "cd /src", *steps]))
        # So the tests need not wait minutes: a short watchdog, quick restarts and aborts, for every instance.
        run(
            name,
            "mkdir -p /etc/systemd/system/segwatch@.service.d && printf '[Service]\\nWatchdogSec=3s\\n"
            "RestartSec=1s\\nTimeoutAbortSec=2s\\n' > /etc/systemd/system/segwatch@.service.d/test.conf "
            "&& systemctl daemon-reload",
        )
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, timeout=120, check=False)


def run(
    machine: str, script: str, *, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    result = podman("exec", machine, "sh", "-c", script, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{script!r} exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


def make_instance(machine: str, name: str) -> None:
    """The README's per-job block, as written, for instance `name` (dump root created as the trainer would)."""
    block = readme_block("name=exp42").replace("name=exp42", f"name={name}", 1)
    run(machine, f"set -e\nmkdir -p /srv/dumps/{name}\ncd /src\n{block}")


def show(machine: str, unit: str) -> dict[str, str]:
    text = run(
        machine, f"systemctl show {unit} -p ActiveState -p MainPID -p NRestarts -p ExecMainStatus"
    ).stdout
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def get(machine: str, url: str) -> int:
    probe = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).status)"
    return int(run(machine, f"/opt/segwatch/bin/python -c {shlex.quote(probe)}").stdout.strip())


def http_url(machine: str, unit: str) -> str:
    log = run(machine, f"journalctl -u {unit} --no-pager -o cat").stdout
    found = re.findall(r"health and metrics on (http://\S+)", log)
    assert found, log[-2000:]
    return str(found[-1])


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)


def test_two_instances_made_as_the_readme_says_both_start_and_serve(machine):
    for name in ("exp42", "exp43"):
        make_instance(machine, name)
    urls = {name: http_url(machine, f"segwatch@{name}") for name in ("exp42", "exp43")}
    assert len(set(urls.values())) == 2, urls
    for name, url in urls.items():
        assert show(machine, f"segwatch@{name}")["ActiveState"] == "active"
        assert get(machine, url + "/healthz") == 200
        assert get(machine, url + "/readyz") == 200


def test_ready_comes_after_the_catch_up(machine):
    run(machine, f"/opt/segwatch/bin/python -c {shlex.quote(WRITE_EPOCHS)} /srv/dumps/exp44 1 3")
    # `systemctl start` (in the README's block) returns when READY=1 arrives: the backlog is logged by then.
    make_instance(machine, "exp44")
    # The STATUS= line sent with READY=1 already names the last epoch of the backlog.
    status = run(machine, "systemctl show segwatch@exp44 -p StatusText").stdout
    assert "last logged: train@3" in status, status
    url = http_url(machine, "segwatch@exp44")
    probe = f"import urllib.request; print(urllib.request.urlopen({url + '/metrics'!r}, timeout=10).read().decode())"
    metrics = run(machine, f"/opt/segwatch/bin/python -c {shlex.quote(probe)}").stdout
    assert "segwatch_epochs_logged_total 3.0" in metrics


def test_a_stuck_daemon_is_killed_by_the_watchdog_and_restarted(machine):
    unit = "segwatch@exp42.service"
    # Pings come while the loop runs: a healthy daemon outlives several watchdog periods.
    before = show(machine, unit)
    time.sleep(7)
    assert show(machine, unit) == before, "a healthy daemon was restarted"
    run(machine, f"kill -STOP {before['MainPID']}")
    wait_until(lambda: int(show(machine, unit)["NRestarts"]) > int(before["NRestarts"]), 60, "a restart")
    wait_until(lambda: show(machine, unit)["ActiveState"] == "active", 120, "the restarted daemon")
    assert "Watchdog timeout" in run(machine, f"journalctl -u {unit} --no-pager -o cat").stdout


def test_a_crash_is_restarted(machine):
    unit = "segwatch@exp43.service"
    before = show(machine, unit)
    run(machine, f"kill -KILL {before['MainPID']}")
    wait_until(lambda: int(show(machine, unit)["NRestarts"]) > int(before["NRestarts"]), 60, "a restart")
    wait_until(lambda: show(machine, unit)["ActiveState"] == "active", 120, "the restarted daemon")
    assert show(machine, unit)["MainPID"] != before["MainPID"]


def test_exit_2_a_bad_config_is_not_restarted(machine):
    run(machine, "printf 'watch:\\n  root: /srv/dumps/bad\\ntensorboard: {}\\n' > /etc/segwatch/bad.yaml")
    unit = "segwatch@bad.service"
    assert run(machine, f"systemctl start {unit}", check=False).returncode != 0
    time.sleep(3)  # longer than RestartSec=1s: a restart would have happened by now
    state = show(machine, unit)
    assert (state["ActiveState"], state["ExecMainStatus"], state["NRestarts"]) == ("failed", "2", "0")
    assert "tensorboard.logdir" in run(machine, f"journalctl -u {unit} --no-pager -o cat").stdout
