"""The command line every fuzz target shares: libFuzzer's options after the script name, then an optional
corpus directory (grown in place, the target's seeds added to it) or a finding to replay (no seeds then).
Without a corpus the seeds go through a scratch directory, so a short run starts from them anyway."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris


def fuzz(seeds: Iterable[bytes], test_one_input: Callable[[bytes], None], scratch: Path) -> None:
    inputs = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    if not inputs or os.path.isdir(inputs[0]):
        seed_dir = Path(inputs[0]) if inputs else scratch / "seeds"
        seed_dir.mkdir(exist_ok=True)
        for index, seed in enumerate(seeds):
            (seed_dir / f"seed-{index}").write_bytes(seed)
        if not inputs:
            sys.argv.append(str(seed_dir))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
