"""The producer side: what a training job calls to hand an epoch to segwatch.

`save_epoch` writes the epoch into a hidden temporary directory that the dump pattern cannot match, then renames
it into place, so a watcher sees the whole epoch at once or not at all. It needs only numpy: the training process
never imports TensorFlow or segwatch's other modules.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ArrayOrItems = np.ndarray | Sequence[np.ndarray]


def epoch_directory(root: str | os.PathLike[str], epoch: int, run: str | None = None) -> Path:
    """Where the default layout `{run}/epoch_{epoch}/{role}.npy` keeps an epoch (flat when `run` is None)."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if run is not None and (not run or run.startswith(".") or "/" in run or os.sep in run):
        raise ValueError(f"run must be one non-hidden path segment, got {run!r}")
    base = Path(root) if run is None else Path(root) / run
    return base / f"epoch_{epoch}"


def save_epoch(
    root: str | os.PathLike[str],
    epoch: int,
    *,
    gt: ArrayOrItems,
    pred: ArrayOrItems,
    image: ArrayOrItems | None = None,
    run: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write one epoch atomically and return its directory.

    Each role is one array ((H,W) or a (N,...) batch), or a list of arrays for a batch whose items differ in
    shape; a list is written as `gt_0.npy`, `gt_1.npy`, ...

    An epoch that already exists (a job resumed from a checkpoint dumps its last epochs again) never raises
    inside training: with `overwrite=True` (the default) the new epoch replaces the old one whole, and segwatch
    reports the re-dump once if it had logged the old one (`segwatch relog` shows the new data); with
    `overwrite=False` the existing epoch is kept and nothing is written.
    """
    target = epoch_directory(root, epoch, run)
    if target.exists() and not overwrite:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        for role, value in (("gt", gt), ("pred", pred), ("image", image)):
            if value is None:
                continue
            if isinstance(value, np.ndarray):
                _save(staging / f"{role}.npy", value)
            else:
                for index, array in enumerate(value):
                    _save(staging / f"{role}_{index}.npy", np.asarray(array))
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _publish(staging: Path, target: Path) -> None:
    """Rename the staged epoch into place; an existing one is first moved aside under a hidden name (which
    the dump pattern never matches), so a reader sees the old epoch or the new one, never a mix."""
    try:
        os.rename(staging, target)
        return
    except OSError as exc:
        if not target.exists():
            raise
        first_error = exc
    old = target.parent / f".{target.name}.{secrets.token_hex(4)}.old"
    try:
        os.rename(target, old)
    except FileNotFoundError:
        pass  # removed meanwhile: the rename below is all there is to do
    except OSError:
        raise first_error from None
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        # Durable before the rename publishes it: a crash must not leave a visible epoch of empty files.
        os.fsync(handle.fileno())
