"""The relog journal: a move of event files interrupted at any point is finished by whoever opens the logdir."""

from __future__ import annotations

import json

import pytest

from segwatch.errors import ConfigError
from segwatch.output.ledger import Ledger
from segwatch.output.relogjournal import (
    JOURNAL,
    OLD_DIR,
    finish_interrupted_relogs,
    retired_name,
    start_relog,
)
from segwatch.relog import choose_runs

OURS = ("events.out.tfevents.1.host.1.aa.segwatch", "events.out.tfevents.2.host.1.bb.segwatch")
THEIRS = "events.out.tfevents.1.host.9.v2"


def logdir_with_run(tmp_path):
    run_dir = tmp_path / "tb" / "alpha"
    run_dir.mkdir(parents=True)
    for name in (*OURS, THEIRS):
        (run_dir / name).write_bytes(name.encode())
    ledger = Ledger.open(tmp_path / "tb")
    ledger.commit_all("alpha", [1, 2, 3])
    ledger.commit_all("beta", [1])
    return run_dir, ledger


def test_start_relog_moves_only_segwatch_files_and_resets_only_that_run(tmp_path):
    run_dir, ledger = logdir_with_run(tmp_path)

    moved = start_relog(str(tmp_path / "tb"), "alpha", ledger, now=0)

    assert moved == 2
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([OLD_DIR, THEIRS])
    retired = sorted(p.name for p in (run_dir / OLD_DIR / "19700101T000000Z").iterdir())
    assert retired == sorted(retired_name(name) for name in OURS)
    assert all("tfevents" not in name for name in retired)
    reopened = Ledger.open(tmp_path / "tb")
    assert reopened.last_epoch("alpha") is None and reopened.last_epoch("beta") == 1


@pytest.mark.parametrize("moved_before_death", [0, 1, 2])
def test_an_interrupted_relog_is_finished_on_the_next_open(tmp_path, moved_before_death):
    run_dir, _ = logdir_with_run(tmp_path)
    into = f"{OLD_DIR}/stamp"
    (run_dir / JOURNAL).write_text(json.dumps({"run": "alpha", "files": list(OURS), "into": into}))
    (run_dir / into).mkdir(parents=True)
    for name in OURS[:moved_before_death]:
        (run_dir / name).rename(run_dir / into / retired_name(name))

    finish_interrupted_relogs(str(tmp_path / "tb"), Ledger.open(tmp_path / "tb"))

    assert sorted(p.name for p in run_dir.iterdir()) == sorted([OLD_DIR, THEIRS])
    assert sorted(p.name for p in (run_dir / into).iterdir()) == sorted(retired_name(n) for n in OURS)
    assert Ledger.open(tmp_path / "tb").last_epoch("alpha") is None


def test_a_run_that_is_not_known_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"no run named 'gamma' .*known runs: alpha, beta"):
        choose_runs(["gamma"], {"alpha"}, {"beta"})
    assert choose_runs([], {"beta"}, {"alpha"}) == ["alpha", "beta"]
