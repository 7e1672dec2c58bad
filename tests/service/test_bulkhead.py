"""The processor's bulkhead: whatever one artifact raises, a bug included, stays with that artifact.

The exception is injected at a true boundary, the Sink protocol: a real EventSink wrapped so that one run's
write raises what a programming error would. Everything else is real: .npy files, the renderer, the ledger,
event files read back with TensorBoard's reader.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from segwatch.config import load_config
from segwatch.errors import Outcome, SinkError
from segwatch.output.ledger import Ledger
from segwatch.output.sink import EventSink
from segwatch.service.discovery import discover
from segwatch.service.processor import Processor
from segwatch.summaries import Summary

from conftest import raw_record_counts


class BrokenForOneRun:
    """A Sink that raises `error` for `run` (after writing its first summary), and is a real sink otherwise."""

    def __init__(self, inner: EventSink, run: str, error: Exception) -> None:
        self.inner, self.run, self.error = inner, run, error
        self.logdir = inner.logdir

    def write(self, run: str, step: int, summaries: Sequence[Summary]) -> None:
        if run == self.run:
            self.inner.write(run, step, summaries[:1])
            raise self.error
        self.inner.write(run, step, summaries)

    def close_idle(self, idle: float) -> int:
        return self.inner.close_idle(idle)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def dumped(tmp_path: Path, write_config) -> Path:
    labels = np.arange(64, dtype=np.uint8).reshape(8, 8) % 5
    for run in ("a", "b", "c"):
        for epoch in (1, 2):
            directory = tmp_path / "dumps" / run / f"epoch_{epoch}"
            directory.mkdir(parents=True)
            np.save(directory / "gt.npy", labels)
            np.save(directory / "pred.npy", labels[::-1])
    return write_config(metrics={"enabled": False})


@pytest.mark.parametrize("error", [KeyError("summary"), AttributeError("'NoneType' has no attribute 'x'")])
def test_a_programming_error_sets_aside_one_artifact_and_the_rest_is_logged(dumped, error, caplog):
    from segwatch.plan import build_plan

    config = load_config(dumped, env={})
    logdir = config.tensorboard.logdir
    ledger = Ledger.open(logdir)
    sink = BrokenForOneRun(EventSink(logdir), "b", error)
    plan = build_plan(config)
    processor = Processor(plan, sink, ledger)
    artifacts, _ = discover(plan)
    with caplog.at_level(logging.DEBUG, logger="segwatch"):
        outcomes = {(a.run, a.epoch): processor.process(a).outcome for a in artifacts}
    sink.close()
    assert outcomes == {
        ("a", 1): Outcome.LOGGED,
        ("a", 2): Outcome.LOGGED,
        ("b", 1): Outcome.SET_ASIDE,
        ("b", 2): Outcome.SET_ASIDE,
        ("c", 1): Outcome.LOGGED,
        ("c", 2): Outcome.LOGGED,
    }
    lines = [r for r in caplog.records if r.levelno == logging.ERROR and "run=b epoch=1" in r.getMessage()]
    assert len(lines) == 1 and f"unexpected {type(error).__name__}" in lines[0].getMessage()
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
    # Set aside in the ledger: a second pass over the same files neither retries nor reports them.
    again = Processor(plan, EventSink(logdir), Ledger.open(logdir))
    caplog.clear()
    assert [again.process(a).outcome for a in artifacts if a.run == "b"] == [Outcome.DONE, Outcome.DONE]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for run in ("a", "c"):
        counts = raw_record_counts(Path(logdir) / run)
        assert sorted({step for _, step in counts}) == [1, 2] and set(counts.values()) == {1}


def test_a_broken_output_still_stops_progress(dumped):
    from segwatch.plan import build_plan

    config = load_config(dumped, env={})
    logdir = config.tensorboard.logdir
    sink = BrokenForOneRun(EventSink(logdir), "a", SinkError("disk gone"))
    plan = build_plan(config)
    processor = Processor(plan, sink, Ledger.open(logdir))
    artifacts, _ = discover(plan)
    with pytest.raises(SinkError):
        processor.process(artifacts[0])
    sink.close()
    assert not Ledger.open(logdir).is_done("a", 1)
