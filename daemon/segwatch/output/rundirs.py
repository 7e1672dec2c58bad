"""Where each run's event files and ledger go: `<logdir>/<run>/`, or, when `tensorboard.logdir` holds `{run}`,
the logdir with `{run}` replaced by the run's name (so the images land beside the training job's own curves).

With `{run}`, the unnamed run (a flat dump) drops the `{run}` segment: `/runs/{run}/tb` gives `/runs/tb`.
"""

from __future__ import annotations

import glob
import os

from segwatch.intake.paths import is_hidden
from segwatch.output import storage
from segwatch.tfquiet import import_tensorflow

RUN = "{run}"


def is_pattern(logdir: str) -> bool:
    return RUN in logdir


def run_directory(logdir: str, run: str) -> str:
    """The directory run `run` writes into; the unnamed run writes into the logdir itself (or, with `{run}`,
    into the logdir without its `{run}` segment)."""
    if is_pattern(logdir):
        if run:
            return logdir.replace(RUN, run)
        head, _, tail = logdir.partition(RUN)
        tail = tail.lstrip("/")
        head = head.rstrip("/") or "/"
        return storage.join(head, tail) if tail else head
    if not run:
        return logdir
    return storage.join(logdir, run)


def run_directories(logdir: str) -> list[tuple[str, str]]:
    """(run, directory) for the unnamed run and every run whose directory exists; hidden names are skipped."""
    if not is_pattern(logdir):
        return [
            ("", logdir),
            *((name, storage.join(logdir, name)) for name in storage.subdirectories(logdir)),
        ]
    head, _, tail = logdir.partition(RUN)
    found = [("", run_directory(logdir, ""))]
    if storage.is_url(logdir):
        import_tensorflow()  # quietly, the first time
        import tensorflow as tf

        # Listed, not globbed: the logdir's own name may hold glob characters (`lr[0.1]`).
        parent = head.rstrip("/")
        names = (
            [name.rstrip("/") for name in tf.io.gfile.listdir(parent)] if tf.io.gfile.isdir(parent) else []
        )
        matches = [storage.join(parent, name) + tail.rstrip("/") for name in names]
        matches = [path for path in matches if tf.io.gfile.isdir(path)]
    else:
        matches = glob.glob(glob.escape(head) + "*" + glob.escape(tail))
        matches = [path.rstrip("/") for path in matches if os.path.isdir(path) and not os.path.islink(path)]
    for path in sorted(matches):
        run = path[len(head) : len(path) - len(tail.rstrip("/"))].rstrip("/")
        if run and "/" not in run and not is_hidden(run):
            found.append((run, run_directory(logdir, run)))
    return found
