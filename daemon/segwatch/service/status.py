"""The daemon's status: one model of what it is doing, written out for the log and for the service manager.

The log's status line carries ages ("12 s ago"); the service manager's STATUS= does not, so that it changes
only when something happens and is sent only then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segwatch.units import run_label

__all__ = ["Status"]


@dataclass
class Status:
    backlog: int = 0
    # run -> (epoch, when); when is None for an epoch logged before this process started.
    last_logged: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    # Wall-clock time the output started failing, and why; None and "" while it works.
    output_failing_since: float | None = None
    output_problem: str = ""
    # The one line a user gets while no pattern matches the dump files ("" otherwise).
    unmatched: str = ""
    # Dump files removed by watch.retention; None when retention is off.
    removed: tuple[int, int] | None = None

    def logged(self, run: str, epoch: int, when: float | None) -> None:
        self.last_logged[run] = (epoch, when)

    def summary(self) -> str:
        """The STATUS= text: pending epochs and each run's last epoch, with no ages."""
        runs = ", ".join(f"{run_label(run)}@{epoch}" for run, (epoch, _) in sorted(self.last_logged.items()))
        line = f"backlog {self.backlog} epochs; last logged: {runs or 'none yet'}"
        if self.output_failing_since is not None:
            line += "; output failing"
        if self.output_problem:
            line += f": {self.output_problem}"
        line += self._unmatched()
        return line if self.removed is None else f"{line}; removed {self.removed[0]} dump files"

    def detail(self, now: float) -> str:
        """The log's status line, with ages measured from wall-clock `now`."""
        runs = ", ".join(
            f"{run_label(run)}@{epoch} ({'before start-up' if when is None else f'{now - when:.0f} s ago'})"
            for run, (epoch, when) in sorted(self.last_logged.items())
        )
        failing = (
            ""
            if self.output_failing_since is None
            else f"; output failing for {now - self.output_failing_since:.0f} s"
        )
        removed = (
            ""
            if self.removed is None
            else f"; removed {self.removed[0]} dump files ({self.removed[1]} bytes)"
        )
        return f"backlog {self.backlog} epochs; last logged: {runs or 'none yet'}{failing}{removed}" + (
            self._unmatched()
        )

    def _unmatched(self) -> str:
        return f"; {self.unmatched}" if self.unmatched else ""
