"""`{run}` in tensorboard.logdir: where each run writes, how restarts find the runs, what the config accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segwatch.config import config_from_mapping
from segwatch.errors import ConfigError
from segwatch.output.ledger import LEDGER_NAME, Ledger, RunLedgers, open_ledger
from segwatch.output.rundirs import run_directories, run_directory


def test_run_replaces_the_placeholder_and_the_unnamed_run_drops_its_segment():
    assert run_directory("/runs/{run}/tb", "exp1") == "/runs/exp1/tb"
    assert run_directory("/runs/{run}/tb", "") == "/runs/tb"
    assert run_directory("/runs/{run}", "") == "/runs"
    assert run_directory("gs://bucket/{run}/tb", "a") == "gs://bucket/a/tb"
    assert run_directory("gs://bucket/{run}/tb", "") == "gs://bucket/tb"
    # Without the placeholder, nothing changes.
    assert run_directory("/tb", "exp1") == "/tb/exp1"
    assert run_directory("/tb", "") == "/tb"


def test_existing_run_directories_are_found_by_the_pattern(tmp_path):
    for name in ("a/tb", "b/tb", "c/other", ".hidden/tb", "tb"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "file").mkdir()
    found = run_directories(f"{tmp_path}/{{run}}/tb")
    assert found == [("", f"{tmp_path}/tb"), ("a", f"{tmp_path}/a/tb"), ("b", f"{tmp_path}/b/tb")]
    at_end = dict(run_directories(f"{tmp_path}/{{run}}"))
    assert at_end[""] == str(tmp_path)
    assert {"a", "b", "c", "tb", "file"} <= set(at_end) and ".hidden" not in at_end


def test_each_run_keeps_its_ledger_in_its_own_directory(tmp_path):
    pattern = f"{tmp_path}/{{run}}/tb"
    ledger = open_ledger(pattern)
    assert isinstance(ledger, RunLedgers)
    ledger.commit_all("a", [1, 2])
    ledger.commit("b", 7)
    ledger.set_aside("b", 9, reason="bad", fingerprint="f")
    ledger.commit("", 3)
    assert json.loads((tmp_path / "a" / "tb" / LEDGER_NAME).read_text())["runs"].keys() == {"a"}
    assert json.loads((tmp_path / "b" / "tb" / LEDGER_NAME).read_text())["runs"].keys() == {"b"}
    assert json.loads((tmp_path / "tb" / LEDGER_NAME).read_text())["runs"].keys() == {""}
    assert ledger.path_for("a") == str(tmp_path / "a" / "tb" / LEDGER_NAME)

    again = open_ledger(pattern)
    assert (again.last_epoch("a"), again.last_epoch("b"), again.last_epoch("")) == (2, 7, 3)
    assert again.set_aside_fingerprint("b", 9) == "f"
    # A plain logdir still has one ledger.
    assert type(open_ledger(tmp_path / "plain")) is Ledger


def config_with(logdir: str, pattern: str = "{run}/epoch_{epoch}/{role}.npy"):
    return config_from_mapping(
        {"watch": {"root": "/data", "pattern": pattern}, "tensorboard": {"logdir": logdir}},
        env={},
        base_dir=Path("/cfg"),
    )


def test_the_config_accepts_run_as_a_path_segment():
    assert config_with("/runs/{run}/tb").tensorboard.logdir == "/runs/{run}/tb"
    assert config_with("runs/{run}").tensorboard.logdir == "/cfg/runs/{run}"
    assert config_with("gs://bucket/x/{run}/tb").tensorboard.logdir == "gs://bucket/x/{run}/tb"


@pytest.mark.parametrize(
    ("logdir", "pattern", "expected"),
    [
        ("/runs/{run}/{run}", None, "at most once"),
        ("/runs/x{run}/tb", None, "whole path segment"),
        ("gs://{run}/tb", None, "not its host"),
        ("/runs/{run}/tb", "epoch_{epoch}/{role}.npy", "watch.pattern does not"),
    ],
)
def test_the_config_refuses_run_where_it_cannot_work(logdir, pattern, expected):
    with pytest.raises(ConfigError) as caught:
        config_with(logdir, pattern or "{run}/epoch_{epoch}/{role}.npy")
    assert "tensorboard.logdir" in str(caught.value)
    assert expected in str(caught.value)


def test_url_run_directories_are_listed_not_globbed():
    # TensorFlow's in-memory filesystem stands in for an object store; `[lr]` would be a glob class.
    import secrets

    import tensorflow as tf

    base = f"ram://rundirs-{secrets.token_hex(4)}/sweep[lr]"
    for run in ("a", "lr[0.1]", ".hidden"):
        tf.io.gfile.makedirs(f"{base}/{run}/tb")
    tf.io.gfile.makedirs(f"{base}/no-tb-inside")
    assert run_directories(base + "/{run}/tb") == [
        ("", f"{base}/tb"),
        ("a", f"{base}/a/tb"),
        ("lr[0.1]", f"{base}/lr[0.1]/tb"),
    ]
