"""TensorFlow is loaded only when the logdir needs it: a local logdir is written without it (its import costs
seconds and hundreds of MiB), a URL logdir goes through TensorFlow's file systems. Whole processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segwatch.dump import save_epoch

# The command line in a fresh interpreter, then whether TensorFlow got imported: `ram://` (TensorFlow's
# in-memory file system) only lives inside the process, so the check runs in the same one.
PROBE = """
import json, sys
sys.argv = ["segwatch", "once", "--config", sys.argv[1]]
from segwatch.cli import main
code = main()
print(json.dumps({"code": code, "tensorflow": "tensorflow" in sys.modules}))
"""


def run_once(tmp_path: Path, logdir: str) -> dict[str, object]:
    rng = np.random.default_rng(0)
    for epoch in (1, 2):
        labels = rng.integers(0, 3, (2, 16, 16)).astype(np.uint8)
        save_epoch(tmp_path / "dumps", epoch, gt=labels, pred=labels, run="r")
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "watch": {"root": str(tmp_path / "dumps")},
                "tensorboard": {"logdir": logdir},
                "compose": {"num_classes": 3},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_local_logdir_is_logged_without_loading_tensorflow(tmp_path: Path) -> None:
    result = run_once(tmp_path, str(tmp_path / "tb"))
    assert result == {"code": 0, "tensorflow": False}
    assert list((tmp_path / "tb" / "r").glob("events.out.tfevents.*"))


@pytest.mark.timeout(180)
def test_a_url_logdir_loads_tensorflow_for_its_file_system(tmp_path: Path) -> None:
    result = run_once(tmp_path, f"ram://segwatch-{os.getpid()}/tb")
    assert result == {"code": 0, "tensorflow": True}
