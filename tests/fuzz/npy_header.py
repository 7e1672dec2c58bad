"""Coverage-guided fuzzing of the `.npy` header parser and the checks around it (atheris, i.e. libFuzzer).

Each input is written to a real file and read by every loader entry point. The only failures allowed are
ArtifactError (NotReadyError for a file that may still grow), each a one-line message naming the file; a
file that loads must hold exactly the array its header promises.

    python tests/fuzz/npy_header.py -runs=20000                      # the short run (CI)
    python tests/fuzz/npy_header.py -max_total_time=3600 -jobs=4 CORPUS_DIR   # the long run
    python tests/fuzz/npy_header.py CRASH_FILE                       # replay a finding

libFuzzer options come after the script name; a corpus directory is grown in place when given. Seeds (one
np.save output per allowed dtype and version) are added to the first corpus directory, or to a scratch one.
"""

from __future__ import annotations

import io

import atheris
import numpy as np
from harness import fuzz
from scratch import scratch_directory

with atheris.instrument_imports(include=["segwatch"]):
    from segwatch.errors import ArtifactError
    from segwatch.intake.npy import check_complete, load_array

CAPS = {"max_file_bytes": 1 << 22, "max_pixels": 1 << 20}
SCRATCH = scratch_directory()
TARGET = SCRATCH / "input.npy"


def seeds() -> list[bytes]:
    found = []
    for dtype in ("|b1", "|u1", "<i2", ">i4", "<u8", "<f2", ">f4", "<f8"):
        for version in ((1, 0), (2, 0), (3, 0)):
            for order in ("C", "F"):
                array = np.zeros((2, 3, 4), dtype=dtype, order=order)
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, array, version=version)
                found.append(buffer.getvalue())
    return found


def check(message: str) -> None:
    if not message.startswith(f"{TARGET}: ") or "\n" in message:
        raise AssertionError(f"message does not name the file on one line: {message!r}")


def test_one_input(data: bytes) -> None:
    TARGET.write_bytes(data)
    for call in (
        lambda: check_complete(TARGET, SCRATCH, **CAPS),
        lambda: load_array(TARGET, root=SCRATCH, **CAPS),
    ):
        try:
            result = call()
        except ArtifactError as exc:
            check(str(exc))
            continue
        if isinstance(result, np.ndarray):
            header = check_complete(TARGET, SCRATCH)  # the whole file was loaded, so it is complete
            if result.shape != header.shape or result.dtype != header.dtype:
                raise AssertionError(f"loaded {result.shape} {result.dtype}, header said {header}")
            if header.expected_size != len(data):
                raise AssertionError(f"loaded a file of {len(data)} bytes promising {header.expected_size}")
            result.tobytes()  # every promised byte is there to read
            del result


def main() -> None:
    fuzz(seeds(), test_one_input, SCRATCH)


if __name__ == "__main__":
    main()
