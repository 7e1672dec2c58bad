import errno
import json
import os

import pytest

from segwatch.output.ledger import JOURNAL_NAME, LEDGER_NAME, Ledger


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
    # Contiguous epochs are stored as ranges, so a long run stays small (in the snapshot closing writes).
    ledger.close()
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
    assert [p.name for p in tmp_path.iterdir()] == [JOURNAL_NAME]
    ledger.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_NAME, LEDGER_NAME]


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
    assert [p.name for p in tmp_path.iterdir()] == [JOURNAL_NAME]


def _bytes_written() -> int:
    """Bytes this process has passed to write(2) so far (Linux /proc accounting)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


def _bytes_per_commit(tmp_path, runs: int, commits: int = 150) -> float:
    """Average bytes written by one commit into a ledger whose history holds `runs` runs."""
    tmp_path.mkdir()
    history = {
        # Gaps and set-aside epochs keep the ranges from merging: a history that really grows with each run.
        f"run-{run}": {
            "done": [[0, 0], [2, 2], [4, 4]],
            "set_aside": {"3": {"reason": "bad file " * 4, "fingerprint": "0123456789abcdef"}},
        }
        for run in range(runs)
    }
    (tmp_path / LEDGER_NAME).write_text(json.dumps({"version": 1, "runs": history}))
    ledger = Ledger.open(tmp_path)
    before = _bytes_written()
    for epoch in range(10, 10 + commits):
        ledger.commit("run-0", epoch * 2)
    return (_bytes_written() - before) / commits


def test_commit_cost_does_not_grow_with_history(tmp_path):
    small = _bytes_per_commit(tmp_path / "small", runs=10)
    large = _bytes_per_commit(tmp_path / "large", runs=2000)
    # The large history's snapshot is ~200 KB: rewriting it per commit, as before the journal, would show.
    assert (tmp_path / "large" / LEDGER_NAME).stat().st_size > 100_000
    assert large < 1.5 * small and large < 200, (small, large)


def test_the_journal_is_folded_into_the_snapshot_once_it_outgrows_it(tmp_path, monkeypatch):
    import segwatch.output.ledger

    monkeypatch.setattr(segwatch.output.ledger, "_COMPACT_MIN_BYTES", 512)
    ledger = Ledger.open(tmp_path)
    sizes = []
    for epoch in range(0, 200, 2):
        ledger.commit("r", epoch)
        sizes.append((tmp_path / JOURNAL_NAME).stat().st_size)
    # Bounded by the larger of the floor and the snapshot: the rewriting is paid once per that many bytes.
    snapshot = (tmp_path / LEDGER_NAME).stat().st_size
    assert max(sizes) <= max(512, snapshot) + 64 and min(sizes) == 0, sizes
    assert [e for e in range(200) if Ledger.open(tmp_path).is_done("r", e)] == list(range(0, 200, 2))


def test_journal_survives_a_torn_last_line_and_old_snapshots_load(tmp_path):
    # A snapshot as written before the journal existed loads as it is.
    (tmp_path / LEDGER_NAME).write_text(
        json.dumps({"version": 1, "runs": {"r": {"done": [[0, 3]], "set_aside": {}}}})
    )
    ledger = Ledger.open(tmp_path)
    ledger.commit("r", 4)
    # A kill in the middle of an append leaves a line without its end.
    with open(tmp_path / JOURNAL_NAME, "ab") as journal:
        journal.write(b'{"done": [5], "ru')
    reopened = Ledger.open(tmp_path)
    assert [e for e in range(7) if reopened.is_done("r", e)] == [0, 1, 2, 3, 4]
    reopened.commit("r", 6)
    assert [e for e in range(7) if Ledger.open(tmp_path).is_done("r", e)] == [0, 1, 2, 3, 4, 6]


def test_stale_temporary_files_are_removed(tmp_path):
    from segwatch.output.ledger import remove_stale_temps

    for name in (f"{LEDGER_NAME}.abc123.tmp", f"{LEDGER_NAME}.zz.tmp"):
        (tmp_path / name).write_text("torn")
    (tmp_path / "keep.tmp").write_text("not ours")
    assert remove_stale_temps(str(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tmp"]
