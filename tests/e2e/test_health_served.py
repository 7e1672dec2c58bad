"""`segwatch run` as a real process serving health and metrics (the server itself is unit-tested in
tests/service/test_health.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from segwatch.dump import save_epoch

from conftest import http_request, metric_samples


def test_segwatch_run_serves_health_and_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for epoch in (1, 2):
        gt, pred = rng.integers(0, 5, (2, 8, 8)), rng.integers(0, 5, (2, 8, 8))
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=pred, run="exp")
    config = tmp_path / "segwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "watch": {"root": str(tmp_path / "dumps")},
                "tensorboard": {"logdir": str(tmp_path / "tb")},
                "http": {"enabled": True, "port": 0},
            }
        )
    )
    log = tmp_path / "daemon.log"
    with open(log, "wb") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "segwatch", "run", "--config", str(config)], stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 90
        while "run=exp epoch=2 logged" not in log.read_text():
            assert time.monotonic() < deadline and daemon.poll() is None, log.read_text()
            time.sleep(0.1)
        found = re.search(r"health and metrics on (http://127\.0\.0\.1:\d+)", log.read_text())
        assert found is not None, log.read_text()
        url = found.group(1)
        assert http_request(url + "/healthz")[0] == 200
        deadline = time.monotonic() + 10
        while http_request(url + "/readyz")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        metrics = metric_samples(http_request(url + "/metrics")[2])
        assert metrics[("segwatch_epochs_logged_total", ())] == 2
        assert metrics[("segwatch_last_logged_epoch", (("run", "exp"),))] == 2
        assert metrics[("segwatch_backlog_epochs", ())] == 0
        assert metrics[("segwatch_processing_seconds_count", ())] == 2
        assert http_request(url + "/idle?quiet=500ms&wait=10s")[0] == 200
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=30)
