"""TensorFlow's native logging: what C++ writes to file descriptor 2 while TensorFlow loads never reaches it."""

from __future__ import annotations

import os

from segwatch.tfquiet import QUIET_ENVIRONMENT, _native_stderr_captured, quiet_environment


def test_native_writes_to_fd_2_are_captured_as_lines_and_fd_2_is_restored(capfd):
    with _native_stderr_captured() as lines:
        os.write(
            2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        )
        os.write(2, b"I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\n" * 2000)
    os.write(2, b"after\n")

    assert lines[0].startswith("WARNING: All log messages before absl::InitializeLog()")
    assert len(lines) == 2001  # more than a pipe holds: the reader thread kept it flowing
    assert capfd.readouterr().err == "after\n"


def test_the_quiet_environment_overrides_what_the_user_set(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    quiet_environment()
    assert {key: os.environ[key] for key in QUIET_ENVIRONMENT} == QUIET_ENVIRONMENT
