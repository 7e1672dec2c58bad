"""TensorFlow's native (C++) logging, tamed before TensorFlow loads.

TensorFlow's C++ side writes straight to file descriptor 2, past Python's logging: "All log messages before
absl::InitializeLog() is called are written to STDERR", "oneDNN custom operations are on ...", CPU feature
notes. That breaks one-JSON-object-per-line logs and is noise in plain ones. So, in-process and whatever the
user's environment says: the variables that silence it are set before the import, and the import itself runs
with fd 2 routed through a pipe, whatever still comes out being re-emitted as our own debug records.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

# Values, not defaults: a user's TF_CPP_MIN_LOG_LEVEL=0 would otherwise put C++ lines in a JSON log. segwatch
# only writes summaries with TensorFlow, so oneDNN's numerics do not matter to it.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
}


def quiet_environment() -> None:
    os.environ.update(QUIET_ENVIRONMENT)


def import_tensorflow() -> None:
    """Import TensorFlow with its native logging silenced; lines it still writes become debug records."""
    quiet_environment()
    if "tensorflow" in sys.modules:
        return
    with _native_stderr_captured() as lines:
        import tensorflow  # noqa: F401
    for line in lines:
        if line.strip():
            log.debug("tensorflow: %s", line)


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[list[str]]:
    """Route file descriptor 2 into a pipe for the duration of the block; yields the lines written to it."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr at all: nothing to protect
        yield lines
        return
    reader, writer = os.pipe()

    def drain() -> None:
        with os.fdopen(reader, "rb") as pipe:
            for raw in pipe:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    # A thread empties the pipe as it fills, so a chatty import can never block on a full pipe.
    thread = threading.Thread(target=drain, name="segwatch-tf-stderr", daemon=True)
    thread.start()
    os.dup2(writer, 2)
    os.close(writer)
    try:
        yield lines
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end, so the reader sees its end
        os.close(saved)
        thread.join(5)
