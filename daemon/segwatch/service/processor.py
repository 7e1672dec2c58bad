"""Handling one complete artifact: decide whether to write it, load it, render it, write it, then commit it.

The order is the guarantee: summaries are flushed before the ledger records the epoch, and an epoch that is
not above the run's last written one is never written (TensorBoard would drop every later step).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from segwatch.errors import ArtifactError, NotReadyError, Outcome, Result, RetryableError, SinkError
from segwatch.fingerprints import set_aside_fingerprint
from segwatch.intake.files import load_artifact
from segwatch.intake.layout import Artifact
from segwatch.intake.reads import ReadSession
from segwatch.output import rundirs
from segwatch.output.ledger import Ledger, open_ledger
from segwatch.output.lock import Locks, LogdirBusy
from segwatch.output.logdirs import hold_directory, hold_logdir
from segwatch.output.recovery import reconcile, written_tags
from segwatch.output.relogjournal import finish_interrupted_relogs
from segwatch.output.sink import EventSink, Sink
from segwatch.plan import RunPlan, build_plan
from segwatch.render.items import Item
from segwatch.render.pipeline import RenderedEpoch, ViewerLayers, epoch_items, needs_every_item, render_epoch
from segwatch.render.viewer import StoredLayers
from segwatch.units import run_label

if TYPE_CHECKING:
    from segwatch.config.model import Config

log = logging.getLogger(__name__)

# A contained exception's message is quoted at most this long: whatever raised it, one event stays one line.
REASON_CHARS = 300


class Processor:
    """Takes artifacts one at a time, in any order, and logs each at most once."""

    def __init__(
        self,
        plan: RunPlan,
        sink: Sink,
        ledger: Ledger,
        in_flight: dict[str, tuple[int, set[str]]] | None = None,
    ) -> None:
        self.plan = plan
        # What the viewer already stored per run, so unchanged layers are not written again.
        self.layers = ViewerLayers()
        self.sink = sink
        self.ledger = ledger
        # Per run, an epoch a dead process may have written in part, with the tags it did write.
        self.in_flight = dict(in_flight or {})
        # Called with each artifact once the ledger records it (dump retention removes its files then).
        self.on_commit: Callable[[Artifact], None] | None = None

    def floor(self, run: str) -> int | None:
        """The highest epoch of `run` that is, or may be, in the event files."""
        last = self.ledger.last_epoch(run)
        flight = self.in_flight.get(run)
        if flight is None:
            return last
        return flight[0] if last is None else max(last, flight[0])

    # What the daemon asks between artifacts: it goes through these, never into the ledger or the sink.
    def is_done(self, run: str, epoch: int) -> bool:
        return self.ledger.is_done(run, epoch)

    def files_known(self, run: str, epoch: int) -> bool:
        """Whether the files of a logged epoch are on record, so that a re-dump of it can be told."""
        return self.ledger.done_fingerprint(run, epoch) is not None

    def last_epochs(self) -> dict[str, int]:
        """Per run, the last epoch the ledger records as logged."""
        return {
            run: record.last_epoch
            for run, record in self.ledger.runs.items()
            if record.last_epoch is not None
        }

    def close_idle(self, idle: float) -> int:
        return self.sink.close_idle(idle)

    def process(self, artifact: Artifact) -> Result:
        """Log `artifact` unless it is done, late or known bad. SinkError propagates: the artifact stays pending.

        The bulkhead: any other exception while this one artifact is loaded, rendered, written or committed,
        a bug in segwatch included, sets the artifact aside; the same input can never stop the process.
        """
        try:
            return self._process(artifact)
        except (SinkError, LogdirBusy):
            raise
        except Exception as exc:
            return self._contain(artifact, exc)

    def _contain(self, artifact: Artifact, exc: Exception) -> Result:
        run, epoch = artifact.run, artifact.epoch
        reason = f"unexpected {type(exc).__name__}: {describe_exception(exc)}"
        log.error("run=%s epoch=%d set aside: %s (traceback at debug level)", run_label(run), epoch, reason)
        log.debug("run=%s epoch=%d: the contained exception", run_label(run), epoch, exc_info=exc)
        try:
            with self._recording(run, epoch):
                fingerprint = set_aside_fingerprint(artifact_fingerprint(artifact), self.plan.fingerprint)
                self.ledger.set_aside(run, epoch, reason=reason, fingerprint=fingerprint)
        except SinkError:
            raise
        except Exception as again:
            log.error(
                "run=%s epoch=%d: cannot record it as set aside either (%s); it is skipped until restart",
                run_label(run),
                epoch,
                type(again).__name__,
            )
        return Result(Outcome.SET_ASIDE, reason)

    def _process(self, artifact: Artifact) -> Result:
        run, epoch = artifact.run, artifact.epoch
        if self.ledger.is_done(run, epoch):
            return self._check_redump(artifact)
        files = artifact_fingerprint(artifact)
        # A set-aside epoch is retried when its files or the config that decided its outcome change.
        fingerprint = set_aside_fingerprint(files, self.plan.fingerprint)
        if self.ledger.set_aside_fingerprint(run, epoch) == fingerprint:
            return Result(Outcome.DONE, "set aside earlier, files and config unchanged")
        floor = self.floor(run)
        if floor is not None and epoch < floor:
            return Result(
                Outcome.LATE,
                f"epoch {epoch} is older than epoch {floor}, already written "
                "(`segwatch relog` logs the run's whole history again, in order)",
            )
        present = self._tags_present(run, epoch)

        started = time.perf_counter()
        try:
            rendered = render_artifact(self.plan, artifact, stored=self.layers.stored(run))
        except RetryableError as exc:
            return Result(Outcome.WAITING, str(exc))
        except NotReadyError as exc:
            return Result(Outcome.NOT_READY, str(exc))
        except ArtifactError as exc:
            with self._recording(run, epoch):
                self.ledger.set_aside(run, epoch, reason=str(exc), fingerprint=fingerprint)
            log.error("run=%s epoch=%d set aside: %s", run_label(run), epoch, exc)
            return Result(Outcome.SET_ASIDE, str(exc))
        render_ms = (time.perf_counter() - started) * 1000
        self.layers.rendered(run, epoch, rendered.layers)
        summaries = rendered.summaries
        missing = [summary for summary in summaries if summary.tag not in present]
        if missing:
            try:
                self.sink.write(run, epoch, missing)
            except Exception:
                # Whatever got out must not be written again by a retry: the in-flight record says so.
                self._learn_what_got_out(run, epoch, present)
                raise
        # The epoch is in the event files now. If the ledger cannot record it, the retry must only record it:
        # writing it again would show it twice.
        self.in_flight[run] = (epoch, present | {summary.tag for summary in summaries})
        with self._recording(run, epoch):
            self.ledger.commit(run, epoch, fingerprint=files)
        self.in_flight.pop(run, None)
        self.layers.committed(run, epoch)
        if self.on_commit is not None:
            self.on_commit(artifact)
        if not missing:
            log.info(
                "run=%s epoch=%d was whole in the event files; recorded it, wrote nothing",
                run_label(run),
                epoch,
            )
            return Result(Outcome.DONE, "found whole in the event files")
        log.info(
            "run=%s epoch=%d logged %d summaries in %.0f ms (render %.0f ms)",
            run_label(run),
            epoch,
            len(missing),
            (time.perf_counter() - started) * 1000,
            render_ms,
        )
        return Result(Outcome.LOGGED)

    def _check_redump(self, artifact: Artifact) -> Result:
        """A logged epoch whose files changed since (a resumed job dumping its last epochs again) is reported
        once, with the way to show the new data; the event files are left as they are."""
        run, epoch = artifact.run, artifact.epoch
        logged = self.ledger.done_fingerprint(run, epoch)
        if logged is None:
            return Result(Outcome.DONE)
        now = artifact_fingerprint(artifact)
        if now == logged:
            return Result(Outcome.DONE)
        log.warning(
            "run=%s epoch=%d was dumped again after it was logged; TensorBoard keeps what was logged first. "
            "To show the new files instead, run `segwatch relog --run %s` (it logs the run's history again)",
            run_label(run),
            epoch,
            run_label(run),
        )
        with self._recording(run, epoch):
            self.ledger.note_fingerprint(run, epoch, now)
        return Result(Outcome.DONE, "dumped again after it was logged", redumped=True)

    @contextlib.contextmanager
    def _recording(self, run: str, epoch: int) -> Iterator[None]:
        """The ledger lives in the logdir: failing to write it is an output failure, retried like one."""
        try:
            yield
        except OSError as exc:
            raise SinkError(
                f"{self.ledger.path_for(run)}: cannot record run={run_label(run)} epoch={epoch}: {exc.strerror or exc}"
            ) from exc

    def _learn_what_got_out(self, run: str, epoch: int, present: set[str]) -> None:
        """After a failed write, some of the epoch's records may be in the event file: a retry must skip them."""
        found = written_tags(self.sink.logdir, {run: self.ledger.last_epoch(run)}, only=run)
        tags = found.get(run, {}).get(epoch, set())
        if tags - present:
            self.in_flight[run] = (epoch, present | tags)

    def _tags_present(self, run: str, epoch: int) -> set[str]:
        flight = self.in_flight.get(run)
        if flight is not None and flight[0] == epoch:
            log.info(
                "run=%s epoch=%d is in the event files but not in the ledger: has %s",
                run_label(run),
                epoch,
                sorted(flight[1]),
            )
            return flight[1]
        return set()


def open_processor(config: Config, locks: Locks | None = None, *, plan: RunPlan | None = None) -> Processor:
    """A processor over the configured logdir, its ledger reconciled with the event files already there.

    With `locks`, the logdir is locked first (LogdirBusy if another process holds it). `plan`: the config's,
    built already (a reload builds it first, to refuse a config before anything is closed).
    """
    logdir = config.tensorboard.logdir
    plan = plan or build_plan(config)
    prepare = None
    if locks is not None:
        hold_logdir(locks, logdir)
        if rundirs.is_pattern(logdir):
            held = locks

            def prepare(directory: str) -> None:
                hold_directory(held, directory)

    ledger = open_ledger(logdir)
    finish_interrupted_relogs(logdir, ledger)
    in_flight = reconcile(ledger, logdir)
    return Processor(plan, EventSink(logdir, prepare=prepare), ledger, in_flight)


def render_artifact(
    plan: RunPlan, artifact: Artifact, *, stored: StoredLayers | None = None
) -> RenderedEpoch:
    """Load the artifact's arrays, then render its summaries (`stored`: the viewer layers already written).

    Arrays are read by offset while rendering; if any of the files changed meanwhile, NotReadyError ("changed
    while reading") says to try again once they settle.
    """
    with ReadSession() as reads:
        try:
            items = load_items(plan, artifact, every=needs_every_item(plan.epoch), reads=reads)
            rendered = render_epoch(
                items, plan.epoch, plan.viewer, source=artifact.label, step=artifact.epoch, stored=stored
            )
        except Exception:
            # Bad data read from a file that changed meanwhile is no verdict on the file: say "changed".
            reads.check_unchanged()
            raise
        reads.check_unchanged()
    return rendered


def load_items(
    plan: RunPlan, artifact: Artifact, *, every: bool = False, reads: ReadSession | None = None
) -> list[Item]:
    """The artifact's items, as many as the epoch plan shows (all with `every`). With `reads`, label maps and
    uint8 images stay on disk and only what is drawn or counted is read; without, arrays are read in full."""
    arrays = load_artifact(artifact, caps=plan.caps, root=plan.root, fixed=plan.fixed_paths, reads=reads)
    return epoch_items(arrays, artifact.files, plan.epoch, every=every)


def close_processor(processor: Processor, *, keep_ledger: bool = True) -> None:
    """Close the event files and fold the ledger's journal; `keep_ledger=False` when the logdir is gone: the
    old ledger must not be written into whatever now stands at its path."""
    try:
        processor.sink.close()
    finally:
        if keep_ledger:
            processor.ledger.close()


def describe_exception(exc: BaseException, limit: int = REASON_CHARS) -> str:
    """The exception's message, clipped to one bounded line; never raises, whatever the exception holds."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def artifact_fingerprint(artifact: Artifact) -> str:
    """Changes whenever any of the artifact's files is replaced, rewritten or has its permissions changed
    (mode and ctime: a file made readable again is looked at again)."""
    digest = hashlib.sha256()
    for path in artifact.paths():
        try:
            stat = os.stat(path)
            identity = (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_mode, stat.st_ctime_ns)
            digest.update(f"{path}\0{identity}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:16]
