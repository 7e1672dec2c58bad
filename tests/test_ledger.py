import json

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
