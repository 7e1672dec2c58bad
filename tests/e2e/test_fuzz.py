"""The short run of the coverage-guided fuzz targets in tests/fuzz/ (atheris): the `.npy` header parser, the
whole load path (header -> validation -> offset reads -> render) and the config loader. The long run is
documented in each target."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parents[1] / "fuzz"
RUNS = int(os.environ.get("SEGWATCH_FUZZ_RUNS", "20000"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed (x86_64 Linux wheels only)"
)


def test_fuzz_targets_survive_a_short_run(tmp_path: Path) -> None:
    runs = {}
    # The load path renders each input (about 300 a second): a tenth of the runs keeps it as short.
    counts = {"npy_header": RUNS, "load_path": max(1, RUNS // 10), "config": RUNS}
    for target, count in counts.items():
        out = tmp_path / target
        out.mkdir()
        runs[target] = subprocess.Popen(
            [sys.executable, str(FUZZ / f"{target}.py"), f"-runs={count}", f"-artifact_prefix={out}/"],
            cwd=out,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    failures = []
    for target, process in runs.items():
        output, _ = process.communicate(timeout=110)
        if process.returncode != 0 or f"Done {counts[target]} runs" not in output:
            failures.append(f"{target} (exit {process.returncode}):\n{output[-3000:]}")
    assert not failures, "\n\n".join(failures)
