import errno
import json
import os

import pytest

from segwatch.ledger import LEDGER_NAME, Ledger


def test_commits_survive_a_reopen(tmp_path):
    ledger = Ledger.open(tmp_path)
    for epoch in (0, 1, 2, 5):
        ledger.commit("run", epoch)
    ledger.set_aside("run", 3, reason="bad", fingerprint="abc")
    again = Ledger.open(tmp_path)
    assert again.last_epoch("run") == 5
    assert [e for e in range(7) if again.is_done("run", e)] == [0, 1, 2, 5]
    assert again.set_aside_fingerprint("run", 3) == "abc"
    assert again.last_epoch("other") is None
    # Contiguous epochs are stored as ranges, so a long run stays small.
    assert json.loads((tmp_path / LEDGER_NAME).read_text())["runs"]["run"]["done"] == [[0, 2], [5, 5]]


def test_commit_refuses_to_go_backwards(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.commit("run", 4)
    with pytest.raises(ValueError, match="not above"):
        ledger.commit("run", 4)


def test_leaves_no_temporary_files(tmp_path):
    ledger = Ledger.open(tmp_path)
    for epoch in range(20):
        ledger.commit("r", epoch)
    assert [p.name for p in tmp_path.iterdir()] == [LEDGER_NAME]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 99, "runs": {}}',
        '{"version": 1, "runs": {"r": 3}}',
        '{"version": 1, "runs": {"r": {"done": [[5, 2]], "set_aside": {}}}}',
        "[]",
    ],
)
def test_corrupt_ledger_starts_empty(tmp_path, content, caplog):
    (tmp_path / LEDGER_NAME).write_text(content)
    ledger = Ledger.open(tmp_path)
    assert ledger.runs == {}
    assert "ledger unreadable" in caplog.text


def test_ledger_that_is_not_even_text_starts_empty(tmp_path, caplog):
    (tmp_path / LEDGER_NAME).write_bytes(b"\x98B\x12\xff" * 40)
    assert Ledger.open(tmp_path).runs == {}
    assert "ledger unreadable" in caplog.text


def test_a_failed_write_changes_nothing(tmp_path, monkeypatch):
    ledger = Ledger.open(tmp_path)
    ledger.commit("r", 0)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        ledger.commit("r", 1)
    with pytest.raises(OSError):
        ledger.set_aside("r", 2, reason="bad", fingerprint="abc")
    # Memory still matches the disk, so a retry of the same epoch is not mistaken for done.
    assert not ledger.is_done("r", 1) and ledger.set_aside_fingerprint("r", 2) is None
    monkeypatch.undo()
    ledger.commit("r", 1)
    assert [e for e in range(3) if Ledger.open(tmp_path).is_done("r", e)] == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == [LEDGER_NAME]
