"""`make bench` cannot rot: the pipeline benchmark's --quick smoke run goes through every part (all five
pipelines, the kernel figures, a memory child, the whole-process row) and reports every figure. Not timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "pipeline.py"


@pytest.mark.timeout(300)
def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    w1 = report["workloads"]["W1"]
    assert set(w1["pipelines"]) == {"default", "images", "seed", "floor-default", "floor-images"}
    for pipeline in w1["pipelines"].values():
        assert pipeline["seconds"]["median"] > 0 and pipeline["event_bytes_per_artifact"] > 0
    assert set(w1["ratios"]) == {
        "default/seed",
        "images/seed",
        "default/floor-default",
        "images/floor-images",
    }
    assert all(ratio["wall"]["median"] > 0 and ratio["cpu"]["median"] > 0 for ratio in w1["ratios"].values())
    # The default config writes metrics besides the picture; images only writes the picture alone.
    assert (
        w1["pipelines"]["default"]["event_bytes_per_artifact"]
        > w1["pipelines"]["images"]["event_bytes_per_artifact"]
    )
    assert set(w1["metrics"]["ns_per_pixel"]) == {"kernel", "read_once", "previous"}
    assert w1["memory"]["default"]["anon_samples"] > 0
    once = report["once"]
    assert (
        once["epochs"] == 3
        and once["seconds"]["segwatch"]["median"] > 0
        and once["seconds"]["seed"]["median"] > 0
    )
    whats = {(t["workload"], t["what"]) for t in report["targets"]}
    assert ("W1", "default config segwatch/seed time") in whats
    assert ("W1", "images only segwatch/seed time") in whats
    assert any("segwatch once" in what for _, what in whats)
