"""What the CLI prints, as a user's terminal or log collector gets it: JSON logs that are JSON from the first
line to the last (TensorFlow's C++ start-up lines included), no TensorFlow noise in plain text, commands that
work as printed, flags in either place, and config problems one per line."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from segwatch.dump import save_epoch

from conftest import blob_labels

# A user's environment that would let TensorFlow's C++ logging through: segwatch must not depend on it.
NOISY_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("TF_", "SEGWATCH_"))},
    "TF_CPP_MIN_LOG_LEVEL": "0",
    "TF_ENABLE_ONEDNN_OPTS": "1",
}
TF_NOISE = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "I0000", "W0000", "tensorflow/core")


def segwatch(*args: str, cwd: Path | None = None, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=cwd,
        env=NOISY_ENV if env is None else env,
    )


def json_records(stderr: str) -> list[dict]:
    lines = stderr.splitlines()
    assert lines, "nothing logged"
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\nall of stderr:\n{stderr}") from None
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    return records


def small_dump(root: Path) -> None:
    rng = np.random.default_rng(31)
    for epoch in (1, 2):
        gt = blob_labels(rng, (1, 8, 8), 5)
        save_epoch(root, epoch, gt=gt, pred=gt, run="alpha")


def test_once_logs_only_json_lines_with_tensorflow_loaded(tmp_path, write_config):
    small_dump(tmp_path / "dumps")
    config = write_config()

    result = segwatch("once", "--config", str(config), "--log-format", "json", "--log-level", "debug")

    assert result.returncode == 0, result.stderr
    records = json_records(result.stderr)
    assert any("epoch=2 logged" in record["message"] for record in records)


def test_plain_text_once_shows_none_of_tensorflows_noise(tmp_path, write_config):
    small_dump(tmp_path / "dumps")
    result = segwatch("--log-level", "debug", "once", "--config", str(write_config()))
    assert result.returncode == 0, result.stderr
    noise = [line for line in result.stderr.splitlines() if any(n in line for n in TF_NOISE)]
    assert noise == []


def test_demo_and_the_run_command_it_prints_log_json_and_work_as_printed(tmp_path):
    demo = segwatch("--log-format", "json", "demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    json_records(demo.stderr)
    (printed,) = [line for line in demo.stdout.splitlines() if line.startswith("Follow the dump live with: ")]
    command = shlex.split(printed.removeprefix("Follow the dump live with: "))
    (viewer,) = [line.strip() for line in demo.stdout.splitlines() if "--samples_per_plugin" in line]
    assert Path(shlex.split(viewer)[0]).is_file()

    # Exactly as printed, from the same directory, with no venv on PATH; then SIGTERM.
    env = {**NOISY_ENV, "PATH": "/usr/bin:/bin"}
    with open(tmp_path / "run.log", "wb") as log:
        run = subprocess.Popen(
            [*command, "--log-format", "json"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
    try:
        deadline = time.monotonic() + 120
        while "caught up" not in (tmp_path / "run.log").read_text():
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.1)
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(60)
    assert code == 0, (tmp_path / "run.log").read_text()
    records = json_records((tmp_path / "run.log").read_text())
    assert records[-1]["message"] == "stopped"
    messages = [record["message"] for record in records]
    # Each start-up fact once.
    assert sum(message.startswith("watching ") for message in messages) == 1, messages


def test_global_flags_go_before_or_after_the_subcommand(tmp_path, write_config):
    small_dump(tmp_path / "dumps")
    config = str(write_config())
    after = segwatch("check-config", "--config", config, "--log-format", "json")
    before = segwatch("--log-format", "json", "check-config", config)
    assert after.returncode == before.returncode == 0, after.stderr + before.stderr
    assert after.stdout == before.stdout and "num_classes: 5" in after.stdout


def test_check_config_takes_config_and_the_environment_and_prints_each_problem_on_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "watch: {root: d, colour: red}\ntensorboard: {logdir: tb, tag_prefix: /x}\ncompose: {size: [1]}\n"
    )
    env = {**NOISY_ENV, "SEGWATCH_CONFIG": str(bad)}
    for result in (segwatch("check-config", "--config", str(bad)), segwatch("check-config", env=env)):
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert "\\n" not in result.stderr
        assert "(3 problems)" in lines[0]
        assert [line.split(": ", 2)[1].split(":")[0] for line in lines[1:]] == [
            "watch.colour",
            "tensorboard.tag_prefix",
            "compose.size",
        ]


def test_check_config_refuses_what_once_would_crash_on(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"watch: {{root: {tmp_path}}}\ntensorboard: {{logdir: tb}}\ncompose: {{num_classes: 300}}\n"
    )
    checked = segwatch("check-config", "--config", str(config))
    assert (
        checked.returncode == 2
        and "compose.ignore_index: expected an id outside the classes" in checked.stderr
    )
    once = segwatch("once", "--config", str(config))
    assert once.returncode == 2 and "Traceback" not in once.stderr


def test_explain_prints_the_report(tmp_path, write_config):
    save_epoch(tmp_path / "dumps", 1, gt=np.zeros((4, 4), np.uint8), pred=np.zeros((4, 4), np.uint8))
    config = write_config()
    result = segwatch(
        "explain", "--config", str(config), "epoch_1/gt.npy", "nope.txt", cwd=tmp_path, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr
    assert "epoch_1/gt.npy: gt of run . (unnamed), epoch 1" in result.stdout
    assert "nope.txt: matches nothing" in result.stdout
    assert ".@1: complete: logged next" in result.stdout
