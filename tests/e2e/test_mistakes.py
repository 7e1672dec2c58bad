"""Everyday setup mistakes through the real CLI on real files: each gets a right answer or one clear line,
never a quietly wrong dashboard or a green run that did nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from tensorboard.util import tensor_util
from test_daemon import DaemonProcess, wait_until

from segwatch.dump import save_epoch

from conftest import blob_labels, free_port, read_event_tensors


def segwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def scalars(run_dir) -> dict[str, dict[int, float]]:
    return {
        tag: {step: float(tensor_util.make_ndarray(proto)) for step, proto in events}
        for tag, events in read_event_tensors(run_dir).items()
        if events and events[0][1].dtype == 1  # DT_FLOAT: the scalars
    }


# --- 1. what a prediction is ---------------------------------------------------------------------------------


def test_a_perfect_float_label_prediction_logs_miou_one(tmp_path, write_config):
    rng = np.random.default_rng(11)
    for epoch in (1, 2):
        gt = blob_labels(rng, (2, 32, 40), 5)
        # As after torch's .float(): class ids as float32, the same shape as the ground truth.
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=gt.astype(np.float32))
    config = write_config(compose={"num_classes": 5})

    result = segwatch("once", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 logged"), result.stdout
    values = scalars(tmp_path / "tb")
    assert values["segwatch/mIoU"] == {1: 1.0, 2: 1.0}
    assert values["segwatch/pixel_accuracy"] == {1: 1.0, 2: 1.0}


def test_a_single_channel_float_map_with_five_classes_is_set_aside_with_the_fix(tmp_path, write_config):
    rng = np.random.default_rng(12)
    gt = blob_labels(rng, (2, 16, 16), 5)
    save_epoch(tmp_path / "dumps", 1, gt=gt, pred=rng.random((2, 1, 16, 16)).astype(np.float32))
    config = write_config(compose={"num_classes": 5})

    result = segwatch("once", "--config", str(config))

    assert result.returncode == 1, result.stderr
    assert "1 set aside" in result.stdout
    (line,) = [line for line in result.stderr.splitlines() if "set aside" in line]
    for part in ("pred.npy", "(2, 1, 16, 16)", "float32", "num_classes 5", "single-channel"):
        assert part in line, line
    assert "segwatch/mIoU" not in read_event_tensors(tmp_path / "tb")


# --- 2. nothing matched is loud ------------------------------------------------------------------------------


def test_once_with_a_missing_root_exits_2_naming_watch_root(tmp_path, write_config):
    config = write_config()

    result = segwatch("once", "--config", str(config))

    assert result.returncode == 2, result.stderr
    assert "watch.root" in result.stderr and str(tmp_path / "dumps") in result.stderr
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def write_mismatched_dump(root) -> None:
    """Three epochs at epoch_N/, as save_epoch writes them, for a pattern that expects ep_N/."""
    rng = np.random.default_rng(13)
    for epoch in (1, 2, 3):
        gt = blob_labels(rng, (1, 8, 8), 5)
        save_epoch(root, epoch, gt=gt, pred=gt, run="alpha")


def test_once_that_matches_none_of_the_dump_files_exits_1_with_examples(tmp_path, write_config):
    write_mismatched_dump(tmp_path / "dumps")
    config = write_config(watch={"pattern": "{run}/ep_{epoch}/{role}.npy"})

    result = segwatch("once", "--config", str(config))

    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("0 logged")
    (line,) = [line for line in result.stderr.splitlines() if "matches the configured patterns" in line]
    assert "none of the 6 .npy/.npz files" in line
    assert "alpha/epoch_1/gt.npy, alpha/epoch_1/pred.npy" in line
    assert "see `segwatch explain`" in line


def test_once_over_an_empty_root_is_not_a_failure(tmp_path, write_config):
    (tmp_path / "dumps").mkdir()
    result = segwatch("once", "--config", str(write_config()))
    assert result.returncode == 0, result.stderr
    assert "no dump files under watch.root" in result.stderr


def http_status(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def test_run_says_nothing_matched_at_start_up_in_status_lines_readyz_and_metrics(tmp_path, write_config):
    write_mismatched_dump(tmp_path / "dumps")
    port = free_port()
    config = write_config(
        watch={"pattern": "{run}/ep_{epoch}/{role}.npy", "settle": "100ms", "rescan_interval": "1s"},
        service={"status_interval": "300ms"},
        http={"enabled": True, "port": port},
    )
    daemon = DaemonProcess(config, tmp_path / "run.log")
    try:
        start_up = daemon.wait_for_line("WARNING", "none of the 6 .npy/.npz files")
        assert "see `segwatch explain`" in start_up
        status = daemon.wait_for_line("status:", "none of the 6")
        assert "alpha/epoch_1/gt.npy" in status
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "ready", daemon)
        code, body = http_status(f"http://127.0.0.1:{port}/readyz")
        assert code == 200 and "warning: none of the 6 .npy/.npz files" in body
        metrics = http_status(f"http://127.0.0.1:{port}/metrics")[1]
        assert "segwatch_unmatched_files 6.0" in metrics

        # Fixed by the producer, not the config: files that match clear the warning.
        gt = np.zeros((1, 8, 8), np.uint8)
        save_epoch(tmp_path / "staging", 4, gt=gt, pred=gt, run="alpha")
        (tmp_path / "dumps" / "alpha" / "ep_4").parent.mkdir(exist_ok=True)
        (tmp_path / "staging" / "alpha" / "epoch_4").rename(tmp_path / "dumps" / "alpha" / "ep_4")
        daemon.wait_for_line("match the patterns now")
        wait_until(
            lambda: "warning" not in http_status(f"http://127.0.0.1:{port}/readyz")[1],
            30,
            "no warning",
            daemon,
        )
        # The six stray files still match nothing, and the gauge keeps saying so.
        assert "segwatch_unmatched_files 6.0" in http_status(f"http://127.0.0.1:{port}/metrics")[1]
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.stderr


# --- 3. config changes are honoured ----------------------------------------------------------------------


def test_a_fixed_config_retries_set_aside_epochs_in_order(tmp_path, write_config):
    rng = np.random.default_rng(14)
    for epoch in (1, 2, 3):
        gt = blob_labels(rng, (2, 8, 10), 5)
        class_last = np.eye(5, dtype=np.float32)[gt]  # (N, H, W, C): one-hot scores, class axis last
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=class_last)
    wrong = write_config(compose={"class_axis": "first"})

    first = segwatch("once", "--config", str(wrong))
    assert first.returncode == 1 and "3 set aside" in first.stdout, first.stderr
    assert "this shape fits compose.class_axis: last" in first.stderr
    explained = segwatch("explain", "--config", str(wrong)).stdout
    assert explained.count("set aside (until its files or the config change)") == 3, explained
    again = segwatch("once", "--config", str(wrong))
    assert again.returncode == 0 and "3 already done" in again.stdout, again.stdout  # not reported twice

    fixed = write_config(compose={"class_axis": "last"})
    explained = segwatch("explain", "--config", str(fixed)).stdout
    assert explained.count("its files or the config changed since") == 3, explained
    result = segwatch("once", "--config", str(fixed))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 logged"), result.stdout
    logged = [line.split("epoch=")[1].split()[0] for line in result.stderr.splitlines() if " logged " in line]
    assert logged == ["1", "2", "3"]
    assert values_of(tmp_path / "tb", "segwatch/mIoU") == {1: 1.0, 2: 1.0, 3: 1.0}


def values_of(run_dir, tag: str) -> dict[int, float]:
    return scalars(run_dir)[tag]


def test_an_epoch_fixed_after_later_ones_were_written_is_late_and_relog_fixes_it(tmp_path, write_config):
    rng = np.random.default_rng(15)
    for epoch in (1, 2, 3, 4):
        gt = blob_labels(rng, (1, 8, 8), 5)
        if epoch == 3:
            gt[0, 0, 0] = 6  # a seventh class this config does not know yet
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=gt)

    first = segwatch("once", "--config", str(write_config()))
    assert first.returncode == 1 and first.stdout.startswith("3 logged, 1 set aside"), first.stdout

    fixed = write_config(compose={"num_classes": 7})
    late = segwatch("once", "--config", str(fixed))
    assert late.returncode == 0, late.stderr
    (warning,) = [line for line in late.stderr.splitlines() if "epoch=3 skipped" in line]
    assert "older than epoch 4" in warning and "segwatch relog" in warning

    relogged = segwatch("relog", "--config", str(fixed))
    assert relogged.returncode == 0, relogged.stderr
    assert relogged.stdout.startswith("4 logged"), relogged.stdout
    assert sorted(values_of(tmp_path / "tb", "segwatch/mIoU")) == [1, 2, 3, 4]


# --- 6. health tells the truth -------------------------------------------------------------------------------


@pytest.fixture
def read_only_logdir(tmp_path):
    """`tmp_path/tb` on a tmpfs remounted read-only (root ignores file modes, not a read-only mount)."""
    logdir = tmp_path / "tb"
    logdir.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(logdir)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(logdir)], check=True, capture_output=True)
        yield logdir
    finally:
        subprocess.run(["umount", "-l", str(logdir)], check=False, capture_output=True)


@pytest.mark.timeout(180)
def test_a_read_only_logdir_makes_readyz_503_and_status_say_so_while_healthz_stays_200(
    tmp_path, write_config, read_only_logdir
):
    gt = blob_labels(np.random.default_rng(16), (1, 8, 8), 5)
    save_epoch(tmp_path / "dumps", 1, gt=gt, pred=gt)
    port = free_port()
    config = write_config(
        watch={"settle": "100ms"},
        service={"retry_backoff": ["200ms", "500ms"]},
        http={"enabled": True, "port": port},
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify.sock"))
        manager.settimeout(0.2)
        with open(tmp_path / "run.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "segwatch", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
            )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while (
                http_status(f"{base}/readyz")[0] != 503
                or "output failing" not in http_status(f"{base}/readyz")[1]
            ):
                assert process.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "run.log"
                ).read_text()
                time.sleep(0.1)
            code, body = http_status(f"{base}/readyz")
            assert code == 503 and "Read-only file system" in body, body
            assert http_status(f"{base}/healthz")[0] == 200
            statuses = []
            while not any("output failing" in s and "Read-only" in s for s in statuses):
                assert time.monotonic() < deadline, statuses
                with contextlib.suppress(TimeoutError):
                    statuses += [
                        line
                        for line in manager.recv(4096).decode().splitlines()
                        if line.startswith("STATUS=")
                    ]

            subprocess.run(["mount", "-o", "remount,rw", str(read_only_logdir)], check=True)
            while http_status(f"{base}/readyz")[0] != 200:
                assert process.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "run.log"
                ).read_text()
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
    assert "output writable again" in (tmp_path / "run.log").read_text()


# --- 7. papercuts ----------------------------------------------------------------------------------------


def test_explain_without_paths_lists_only_unmatched_files_grouped_and_epochs_sorted(tmp_path, write_config):
    write_mismatched_dump(tmp_path / "dumps")
    gt = np.zeros((1, 4, 4), np.uint8)
    for epoch in (10, 9):
        directory = tmp_path / "dumps" / "alpha" / f"ep_{epoch}"
        directory.mkdir()
        np.save(directory / "gt.npy", gt)
        np.save(directory / "pred.npy", gt)
    config = write_config(watch={"pattern": "{run}/ep_{epoch}/{role}.npy"})

    result = segwatch("explain", "--config", str(config))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("files matching no pattern (6):")
    assert lines[start + 1 : start + 10 : 3] == ["  alpha/epoch_1/", "  alpha/epoch_2/", "  alpha/epoch_3/"]
    assert [line.split(":")[0].strip() for line in lines[start + 2 : start + 4]] == ["gt.npy", "pred.npy"]
    assert not any("ep_9" in line or "ep_10" in line for line in lines[start : start + 10])
    assert lines[start + 10 :] == [
        "epochs (2):",
        "  alpha@9: complete: logged next (once unchanged for 0.2 s)",
        "  alpha@10: complete: logged next (once unchanged for 0.2 s)",
    ]


def test_after_a_restart_the_status_says_what_the_ledger_holds(tmp_path, write_config):
    gt = np.zeros((1, 4, 4), np.uint8)
    for epoch in (1, 2):
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=gt, run="alpha")
    config = write_config(service={"status_interval": "300ms"})
    assert segwatch("once", "--config", str(config)).returncode == 0

    daemon = DaemonProcess(config, tmp_path / "run.log")
    try:
        line = daemon.wait_for_line("status:")
    finally:
        code, _ = daemon.terminate()
    assert "last logged: alpha@2 (before start-up)" in line, line
    assert code == 0
    assert len(daemon.lines("watching ")) == 1 and not daemon.lines("is on ext4 (mounted", "does not exist")
