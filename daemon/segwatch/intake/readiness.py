"""Deciding when an epoch may be read: all its files present, each as long as its header promises, and none
of them changed for the settle window.

"Unchanged for `settle`" is measured with the daemon's own monotonic clock, between two observations of every
file's (size, mtime_ns, inode, ctime_ns), never by comparing a file's mtime with local time: a server whose
clock is behind, or whole-second timestamps, would otherwise make a file being filled look settled long ago.
An epoch seen complete at its first observation (renamed into place) waits one settle window, no more.

Watcher events and scans only say "look at this path"; this module turns those hints into artifacts that are
safe to read, in (run, epoch) order. It reads file metadata and `.npy` headers, never array data.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segwatch.caps import Caps
from segwatch.errors import ArtifactError, NotReadyError, RetryableError
from segwatch.intake.files import check_dump_file
from segwatch.intake.layout import TRIGGER, Artifact, ArtifactKey, DumpLayout, group_artifacts
from segwatch.units import run_label

log = logging.getLogger(__name__)

# A file still short after its epoch settled is looked at again this often, until the incomplete timeout.
SHORT_RECHECK = 1.0
# With whole-second timestamps (mtime and ctime both), a change within the same second is invisible: the
# window then spans at least two ticks of that clock (FAT's is two seconds).
COARSE_SETTLE = 2.0
# An epoch whose files cannot be read for now is retried after this, doubling up to the maximum.
RETRY_FIRST = 1.0
RETRY_MAX = 60.0

_Signature = tuple[tuple[str, int, int, int, int], ...]


@dataclass
class _Epoch:
    files: dict[ArtifactKey, str] = field(default_factory=dict)
    signature: _Signature = ()
    settled_at: float = 0.0
    next_check: float | None = 0.0
    short_since: float | None = None
    reported_short: bool = False
    last_change: float = 0.0
    triggered_since: float | None = None
    reported_trigger: bool = False
    waits: int = 0


class Readiness:
    """Tracks the epochs seen on disk until each is ready, then hands it out once."""

    def __init__(
        self,
        required_roles: Sequence[str],
        *,
        settle: float,
        incomplete_timeout: float,
        caps: Caps,
        root: Path,
        fixed_files: Mapping[str, str] | None = None,
        layout: DumpLayout | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.required_roles = tuple(required_roles)
        self.fixed_files = dict(fixed_files or {})
        # With a trigger, its appearance says the epoch is written: no settle window, only the size checks.
        self.layout = layout
        self.triggered = layout is not None and layout.trigger is not None
        self.settle = settle
        self.incomplete_timeout = incomplete_timeout
        # With the caps, a forged header promising terabytes is refused at once instead of waited for.
        self.caps = caps
        # A header behind a symlink that leaves the root is not even read, for `.npy` and `.npz` alike.
        self.root = root
        # A ready epoch waits while an older epoch of its run is still being written, so that epochs written
        # back to back are logged in order instead of the older one arriving "late".
        self.hold_back = max(1.0, 5 * settle)
        self._clock = clock
        self._epochs: dict[tuple[str, int], _Epoch] = {}

    def __len__(self) -> int:
        return len(self._epochs)

    def wants(self, key: ArtifactKey) -> bool:
        """Whether a file of `key` takes part in deciding readiness."""
        return key.role in self.required_roles or (self.triggered and key.role == TRIGGER)

    def note(self, key: ArtifactKey, path: str) -> None:
        """A hint that `path` (the file of `key`) appeared or changed: look at its epoch again now."""
        now = self._clock()
        epoch = self._epochs.setdefault((key.run, key.epoch), _Epoch())
        epoch.files[key] = path
        epoch.last_change = now
        epoch.next_check = now if epoch.next_check is None else min(epoch.next_check, now)

    def forget(self, run: str, epoch: int) -> None:
        self._epochs.pop((run, epoch), None)

    def retry_at(self, run: str, epoch: int, when: float) -> None:
        """Look at an epoch again at `when` (the output failed, or a file changed under the reader)."""
        state = self._epochs.get((run, epoch))
        if state is not None:
            state.next_check = when

    def wait(self, run: str, epoch: int, reason: str) -> None:
        """An epoch whose files cannot be read for now (permissions, descriptors, transient I/O): look at it
        again after a delay that doubles with each failure (a hint brings it back at once), and say so once."""
        state = self._epochs.get((run, epoch))
        if state is None:
            return
        state.waits += 1
        delay = min(RETRY_MAX, RETRY_FIRST * 2 ** min(state.waits - 1, 16))
        state.next_check = self._clock() + delay
        if state.waits == 1:
            log.warning("run=%s epoch=%d waiting: %s (retrying with backoff)", run_label(run), epoch, reason)
        else:
            log.debug(
                "run=%s epoch=%d still waiting (retry in %.0f s): %s", run_label(run), epoch, delay, reason
            )

    def next_deadline(self) -> float | None:
        deadlines = [e.next_check for e in self._epochs.values() if e.next_check is not None]
        return min(deadlines, default=None)

    def due_within(self, seconds: float) -> bool:
        """Whether some epoch is to be looked at within `seconds` (false once only waiting on hints)."""
        deadline = self.next_deadline()
        return deadline is not None and deadline <= self._clock() + seconds

    def ready(self) -> list[Artifact]:
        """The epochs whose check is due and that are ready, in (run, epoch) order."""
        now = self._clock()
        found: list[Artifact] = []
        for (run, number), state in sorted(self._epochs.items()):
            if state.next_check is None or state.next_check > now:
                continue
            artifact = self._check(run, number, state, now)
            if artifact is not None:
                found.append(artifact)
        ready_keys = {(a.run, a.epoch) for a in found}
        released = []
        for artifact in found:
            holder = self._older_still_changing(artifact, ready_keys, now)
            if holder is None:
                released.append(artifact)
            else:
                self._epochs[(artifact.run, artifact.epoch)].next_check = min(
                    now + max(self.settle, 0.05), holder.last_change + self.hold_back
                )
        return released

    def _check(self, run: str, number: int, state: _Epoch, now: float) -> Artifact | None:
        state.next_check = None  # from here on, only a new hint or a deadline set below brings it back
        signature = _signature(state.files)
        if signature is None:
            # A file went away (a producer's rename, a cleanup): keep what exists, wait for hints.
            state.files = {k: p for k, p in state.files.items() if os.path.lexists(p)}
            return None
        if self.layout is not None:
            complete, _ = self.layout.group(
                state.files.items(), self.required_roles, fixed_files=self.fixed_files
            )
        else:
            complete, _ = group_artifacts(
                state.files.items(), self.required_roles, fixed_files=self.fixed_files
            )
        if not complete:
            self._trigger_waiting(run, number, state, now)
            return None
        if self.triggered:
            state.signature = signature
            state.settled_at = now
        elif signature != state.signature:
            # Changed since the last look, or seen for the first time: a full window from now, by our clock.
            state.signature = signature
            state.last_change = now
            coarse = all(mtime % 10**9 == 0 and ctime % 10**9 == 0 for *_, mtime, ctime in signature)
            state.settled_at = now + (max(self.settle, COARSE_SETTLE) if coarse else self.settle)
        if now < state.settled_at:
            state.next_check = state.settled_at
            return None
        if self._some_file_short(run, number, state, now, complete[0].members):
            return None
        return complete[0]

    def _trigger_waiting(self, run: str, number: int, state: _Epoch, now: float) -> None:
        """A trigger whose arrays are missing is reported once, after the incomplete timeout."""
        if not self.triggered or not any(key.role == TRIGGER for key in state.files):
            return
        if state.triggered_since is None:
            state.triggered_since = now
        waited = now - state.triggered_since
        if waited < self.incomplete_timeout:
            state.next_check = state.triggered_since + self.incomplete_timeout
        elif not state.reported_trigger:
            state.reported_trigger = True
            present = {key.role for key in state.files}
            missing = [r for r in self.required_roles if r not in present and r not in self.fixed_files]
            log.warning(
                "run=%s epoch=%d trigger present for %.0f s but its arrays are missing: %s",
                run_label(run),
                number,
                waited,
                ", ".join(missing) or "some items",
            )

    def _some_file_short(
        self, run: str, number: int, state: _Epoch, now: float, members: Mapping[str, str]
    ) -> bool:
        for key, path in state.files.items():
            if key.role == TRIGGER:
                continue
            try:
                check_dump_file(Path(path), members.get(key.role), caps=self.caps, root=self.root)
            except RetryableError:
                # Unreadable for now: the processor's read meets it too and puts the epoch on backoff.
                continue
            except NotReadyError as exc:
                if state.short_since is None:
                    state.short_since = now
                if now - state.short_since < self.incomplete_timeout:
                    state.next_check = now + SHORT_RECHECK
                elif not state.reported_short:
                    state.reported_short = True
                    log.warning(
                        "run=%s epoch=%d still incomplete after %.0f s, waiting for it to change: %s",
                        run_label(run),
                        number,
                        now - state.short_since,
                        exc,
                    )
                return True
            except ArtifactError:
                # Corrupt, not short: let the processor read it, report it and set the artifact aside.
                continue
        state.short_since = None
        return False

    def _older_still_changing(
        self, artifact: Artifact, ready_keys: set[tuple[str, int]], now: float
    ) -> _Epoch | None:
        """An older epoch of the same run that is not ready but changed within the hold-back window."""
        for (run, number), state in self._epochs.items():
            if run != artifact.run or number >= artifact.epoch or (run, number) in ready_keys:
                continue
            if now - state.last_change < self.hold_back:
                return state
        return None


def _signature(files: Mapping[ArtifactKey, str]) -> _Signature | None:
    entries = []
    for path in sorted(files.values()):
        try:
            stat = os.stat(path)
        except OSError:
            # A dangling or looping symlink is a bad file, not a missing one: it goes to the processor,
            # which sets the epoch aside naming it.
            try:
                stat = os.lstat(path)
            except OSError:
                return None
        entries.append((path, stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns))
    return tuple(entries)
