"""Whether the patterns match anything: dump files under the root that no pattern matches, counted during a
scan, so that a typo in a pattern is said out loud instead of a green run that logged nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

# What a training job dumps: files with these endings under the root are meant to be read.
DUMP_SUFFIXES = (".npy", ".npz")
# Examples quoted in the message; the scan keeps only the smallest few names, so memory stays flat.
EXAMPLES = 2


@dataclass
class Coverage:
    """Dump files seen by one scan: how many matched a pattern, how many did not, and a few of those."""

    ignored: Collection[str] = ()  # relative paths that are not expected to match (the fixed files)
    matched: int = 0
    unmatched: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, relative: str, *, matched: bool) -> None:
        if matched:
            self.matched += 1
            return
        if not relative.endswith(DUMP_SUFFIXES) or relative in self.ignored:
            return
        self.unmatched += 1
        self.examples = sorted([*self.examples, relative])[:EXAMPLES]

    @property
    def nothing_matched(self) -> bool:
        """Dump files are there, and the patterns match none of them: the config, not the job, is wrong."""
        return self.matched == 0 and self.unmatched > 0

    def problem(self, root: str) -> str:
        """The one line a user gets while nothing matches ('' otherwise)."""
        if not self.nothing_matched:
            return ""
        files = "file" if self.unmatched == 1 else "files"
        return (
            f"none of the {self.unmatched} .npy/.npz {files} under watch.root {root} matches the configured "
            f"patterns (e.g. {', '.join(self.examples)}); see `segwatch explain`"
        )
