"""Coverage-guided fuzzing of the whole load path (atheris): header -> validation -> offset reads ->
normalise -> compose -> metrics, exactly as the daemon renders one artifact.

Each input picks which of an epoch's files it becomes (gt, pred or image) and how the others look, is written
to a real file, and the epoch is rendered with the processor's `render_artifact`. The only exceptions allowed
are segwatch's own (SegwatchError: set aside, or wait); anything else (a ValueError from numpy, an OverflowError, a
MemoryError from a forged shape) would be a crash of the daemon's artifact handling, and fails the run.

    python tests/fuzz/load_path.py -runs=2000                          # the short run (CI)
    python tests/fuzz/load_path.py -max_total_time=3600 CORPUS_DIR     # the long run
"""

from __future__ import annotations

import io

import atheris
import numpy as np
from harness import fuzz
from scratch import scratch_directory

with atheris.instrument_imports(include=["segwatch"]):
    from segwatch.config import config_from_mapping
    from segwatch.errors import SegwatchError
    from segwatch.intake.layout import Artifact
    from segwatch.plan import RunPlan, build_plan
    from segwatch.service.processor import render_artifact

SCRATCH = scratch_directory()
EPOCH = SCRATCH / "r" / "epoch_1"
EPOCH.mkdir(parents=True)
ROLES = ("gt", "pred", "image")


def renderer(metrics: bool, select: str) -> RunPlan:
    return build_plan(
        config_from_mapping(
            {
                "watch": {"root": str(SCRATCH)},
                "tensorboard": {"logdir": str(SCRATCH / "tb")},
                "compose": {
                    "num_classes": 5,
                    "ignore_index": 255,
                    "size": [16, 16],
                    "max_items": 2,
                    "select": select,
                    "panels": ["image", "gt", "pred", "overlay", "error"],
                },
                "limits": {"max_file_bytes": 1 << 22, "max_pixels": 1 << 20},
                "metrics": {"enabled": metrics},
            },
            env={},
        )
    )


RENDERERS = [renderer(metrics, select) for metrics in (True, False) for select in ("first", "worst")]


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD = {
    "gt": npy(np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8) % 5),
    "pred": npy((np.arange(2 * 8 * 8, dtype=np.int64).reshape(2, 8, 8) * 7) % 5),
    "image": npy(np.full((2, 8, 8, 3), 0.5, dtype=np.float32)),
}


def seeds() -> list[bytes]:
    found = []
    for role_index in range(len(ROLES)):
        for content in GOOD.values():
            found.append(bytes([role_index, 0]) + content)
    scores = np.zeros((2, 5, 8, 8), dtype=np.float16)
    found.append(bytes([1, 1]) + npy(scores))
    found.append(bytes([1, 2]) + npy(np.asfortranarray(np.zeros((2, 8, 8), dtype=">i4"))))
    return found


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    role = ROLES[data[0] % len(ROLES)]
    render = RENDERERS[data[1] % len(RENDERERS)]
    files = {}
    for name in ROLES:
        path = EPOCH / f"{name}.npy"
        path.write_bytes(data[2:] if name == role else GOOD[name])
        files[name] = (str(path),)
    try:
        render_artifact(render, Artifact("r", 1, files))
    except SegwatchError as exc:
        message = str(exc)
        if "\n" in message or len(message) > 2000:
            raise AssertionError(f"not one short line: {message[:300]!r}") from exc


def main() -> None:
    fuzz(seeds(), test_one_input, SCRATCH)


if __name__ == "__main__":
    main()
