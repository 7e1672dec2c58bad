"""Running segwatch: the one-shot catch-up (`segwatch once`) and the long-running daemon (`segwatch run`)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from segwatch.config import Config
from segwatch.layout import Artifact, DumpLayout, Pending, group_artifacts
from segwatch.ledger import Ledger
from segwatch.pipeline import Renderer
from segwatch.processor import Outcome, Processor
from segwatch.recovery import reconcile
from segwatch.sink import EventSink
from segwatch.watcher import scan_tree

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """What a pass over the dump root did, for the one-line summary and the exit code."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    incomplete: int = 0

    @property
    def failed(self) -> bool:
        return self.outcomes[Outcome.SET_ASIDE] > 0

    def line(self) -> str:
        parts = [f"{self.outcomes[outcome]} {outcome.value}" for outcome in Outcome]
        return ", ".join([*parts, f"{self.incomplete} incomplete"])


def discover(config: Config) -> tuple[list[Artifact], list[Pending]]:
    """Every complete artifact under the root in (run, epoch) order, and the epochs still missing files."""
    layout = DumpLayout(config.watch.pattern)
    root = Path(config.watch.root)
    keyed = []
    for relative in scan_tree(root):
        key = layout.parse(relative)
        if key is not None:
            keyed.append((key, str(root / relative)))
    fixed = {"gt": str(config.watch.fixed_gt)} if config.watch.fixed_gt is not None else None
    return group_artifacts(keyed, config.required_roles, fixed_files=fixed)


def open_processor(config: Config) -> Processor:
    """A processor over the configured logdir, its ledger reconciled with the event files already there."""
    logdir = config.tensorboard.logdir
    ledger = Ledger.open(logdir)
    in_flight = reconcile(ledger, logdir)
    return Processor(Renderer(config), EventSink(logdir), ledger, in_flight)


def run_once(config: Config) -> Tally:
    """Log every complete artifact not yet logged, in epoch order per run, then return what happened.

    Raises SinkError if the output is broken; everything written before that is committed.
    """
    artifacts, pending = discover(config)
    tally = Tally(incomplete=len(pending))
    for waiting in pending:
        log.info(
            "run=%s epoch=%d incomplete: missing %s",
            waiting.run or ".",
            waiting.epoch,
            ", ".join(waiting.missing),
        )
    processor = open_processor(config)
    sink = processor.sink
    try:
        for artifact in artifacts:
            result = processor.process(artifact)
            tally.outcomes[result.outcome] += 1
            if result.outcome is Outcome.LATE:
                log.warning("run=%s epoch=%d skipped: %s", artifact.run or ".", artifact.epoch, result.reason)
            elif result.outcome is Outcome.NOT_READY:
                log.info("run=%s epoch=%d not ready: %s", artifact.run or ".", artifact.epoch, result.reason)
    finally:
        sink.close()
    return tally
