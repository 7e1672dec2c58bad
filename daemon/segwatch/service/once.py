"""`segwatch once`: log every complete epoch not yet logged, in epoch order per run, and say what happened."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from segwatch.errors import ConfigError, Outcome
from segwatch.intake.coverage import Coverage
from segwatch.intake.layout import Artifact
from segwatch.output.lock import Locks, holding
from segwatch.plan import build_plan
from segwatch.service.discovery import discover, fixed_relative
from segwatch.service.processor import Processor, close_processor, open_processor
from segwatch.service.retention import attach_retention
from segwatch.units import run_label

if TYPE_CHECKING:
    from segwatch.config import Config

__all__ = ["Tally", "run_once"]

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """What a pass over the dump root did, for the one-line summary and the exit code."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    incomplete: int = 0
    # Set when dump files are there but no pattern matches any of them: a run that did nothing is no success.
    nothing_matched: str = ""

    @property
    def failed(self) -> bool:
        return self.outcomes[Outcome.SET_ASIDE] + self.outcomes[Outcome.WAITING] > 0 or bool(
            self.nothing_matched
        )

    def line(self) -> str:
        parts = [f"{self.outcomes[outcome]} {outcome.value}" for outcome in Outcome]
        return ", ".join([*parts, f"{self.incomplete} incomplete"])


def run_once(config: Config, *, runs: Collection[str] | None = None, locks: Locks | None = None) -> Tally:
    """Log every complete artifact not yet logged, in epoch order per run, then return what happened.

    `runs` limits the pass to those runs; `locks`, if given, already hold the logdir (relog). Raises
    ConfigError if the root is missing, SinkError if the output is broken; everything written before that is
    committed.
    """
    root = Path(config.watch.root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise ConfigError(f"watch.root: {root} {what}; nothing to log (check the path, or create it)")
    plan = build_plan(config)
    coverage = Coverage(ignored=fixed_relative(plan))
    artifacts, pending = discover(plan, coverage)
    if runs is not None:
        artifacts = [artifact for artifact in artifacts if artifact.run in runs]
        pending = [waiting for waiting in pending if waiting.run in runs]
    tally = Tally(incomplete=len(pending), nothing_matched=coverage.problem(str(root)))
    if tally.nothing_matched:
        log.error("%s", tally.nothing_matched)
    elif coverage.matched == 0:
        log.warning("no dump files under watch.root %s yet; nothing to log", root)
    for waiting in pending:
        log.info(
            "run=%s epoch=%d incomplete: missing %s",
            run_label(waiting.run),
            waiting.epoch,
            ", ".join(waiting.missing),
        )
    with contextlib.ExitStack() as stack:
        held = locks if locks is not None else stack.enter_context(holding("once"))
        processor = open_processor(config, held, plan=plan)
        attach_retention(config, processor)
        try:
            _process_all(processor, artifacts, tally)
        finally:
            close_processor(processor)
    return tally


def _process_all(processor: Processor, artifacts: list[Artifact], tally: Tally) -> None:
    for artifact in artifacts:
        result = processor.process(artifact)
        tally.outcomes[result.outcome] += 1
        run = run_label(artifact.run)
        if result.outcome is Outcome.LATE:
            log.warning("run=%s epoch=%d skipped: %s", run, artifact.epoch, result.reason)
        elif result.outcome is Outcome.NOT_READY:
            log.info("run=%s epoch=%d not ready: %s", run, artifact.epoch, result.reason)
        elif result.outcome is Outcome.WAITING:
            log.warning(
                "run=%s epoch=%d waiting: %s (not set aside: the next pass retries it)",
                run,
                artifact.epoch,
                result.reason,
            )
