"""Which paths under the watch root are dump files' paths at all: the policy every scan, hint, pattern and
read applies, written once.

- Hidden (`.`-prefixed) segments are where producers stage unfinished work (`save_epoch` among them): nothing
  inside one is matched, listed or hinted.
- A name that is not UTF-8 could not name a TensorBoard run directory, a ledger entry or a log line: it is
  reported once and passed over.
- Nothing outside the root is read: a symlink that leads out of it is refused (a file by the loader, naming
  it; a directory by scans and hints, once).

Refusals that scans meet again on every pass are logged once per process (`report_once`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "hidden_segment",
    "is_hidden",
    "outside_real_root",
    "outside_root",
    "real_root",
    "relative_hint",
    "report_once",
    "report_undecodable",
    "symlinked_directory",
    "undecodable",
]

# How many refused paths are remembered so that each is reported once; past it a refusal may repeat.
_REPORTED_LIMIT = 10_000
_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def is_hidden(name: str) -> bool:
    """Whether one path segment is hidden: where producers stage unfinished work, never read. A hidden name
    is never a run either, so a logdir's hidden directories (segwatch's `.segwatch-old`) are no runs."""
    return name.startswith(".")


def hidden_segment(parts: Iterable[str]) -> str | None:
    """The first hidden segment among `parts`, or None."""
    return next((part for part in parts if is_hidden(part)), None)


def undecodable(name: str) -> bool:
    """Whether a file name holds bytes that are not UTF-8 (decoded to lone surrogates): a run named so could
    not name a TensorBoard run directory, a ledger entry or a log line."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def outside_root(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str | None:
    """Where `path` really leads, when resolving its symlinks takes it out of `root`; None while it stays in.

    The one test of "inside the watch root" that scans, live hints and the loader all apply.
    """
    return outside_real_root(os.path.realpath(path), real_root(os.fspath(root)))


@functools.lru_cache(maxsize=8)
def real_root(root: str) -> str:
    """`root` with its symlinks resolved; once per root: it is on every file's path, and resolving costs a
    system call per component."""
    return os.path.realpath(root)


def outside_real_root(real: str, resolved_root: str) -> str | None:
    """`real` when that resolved path is not `resolved_root` or below it, else None."""
    if real == resolved_root or real.startswith(os.path.join(resolved_root, "")):
        return None
    return real


def report_once(path: str, kind: str, reason: str) -> None:
    """Warn about a path the scans and hints pass over, once per process: rescans meet it again and again.

    Scans and hints spell the root differently (as configured, or resolved), so an entry is remembered by its
    real parent directory and its own name.
    """
    key = (os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)), kind)
    with _reported_lock:
        if key in _reported:
            return
        if len(_reported) >= _REPORTED_LIMIT:
            _reported.clear()
        _reported.add(key)
    log.warning("%s: %s", os.fsencode(path).decode("utf-8", "backslashreplace"), reason)


def report_undecodable(path: str) -> None:
    report_once(path, "undecodable", "name is not valid UTF-8; not read (rename it to log it)")


def symlinked_directory(path: str, root: Path) -> bool:
    """Whether `path` is a symlink to a directory; those are never followed, and one leading out of the
    root is reported. Anything else a symlink points at is listed for the loader to judge."""
    if not os.path.islink(path) or not os.path.isdir(path):
        return False
    target = outside_root(path, root)
    if target is not None:
        reason = f"symlinked directory leads outside the watch root {root} (to {target}); not followed"
        report_once(path, "outside", reason)
    return True


def relative_hint(path: str, root: str) -> str | None:
    """A path a live event names → `/`-separated and relative to `root`, or None when it is the root itself,
    outside it, hidden, or holds an undecodable segment (reported once)."""
    prefix = os.path.join(root, "")
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix) :].split(os.sep)
    if not parts[0] or hidden_segment(parts) is not None:
        return None
    for index, part in enumerate(parts):
        if undecodable(part):
            # The first such segment is what is reported: everything below it is the same problem.
            report_undecodable(os.path.join(root, *parts[: index + 1]))
            return None
    return "/".join(parts)
