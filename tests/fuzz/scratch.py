"""A scratch directory for one fuzzing process, in memory where /dev/shm exists.

libFuzzer ends the process with C's exit(), so Python's atexit handlers never run and a temporary directory
would be left behind; instead each process names its directory after its pid and removes those of processes
that are gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "segwatch-fuzz-"


def scratch_directory() -> Path:
    parent = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
    for stale in parent.glob(f"{PREFIX}*-*"):
        pid = stale.name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
