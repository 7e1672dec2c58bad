"""Finding dump files by listing the root: the scan behind start-up and every periodic rescan (and explain).

Live hints between scans come from watcher.py; both apply the same path policy (paths.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from segwatch.intake.paths import is_hidden, report_once, report_undecodable, symlinked_directory, undecodable

__all__ = ["scan_tree"]


def scan_tree(root: Path) -> Iterator[str]:
    """Every entry below `root`, as a `/`-separated path relative to it, for the dump pattern to match.

    Hidden entries are skipped (producers stage partial epochs there). Symlinked directories are not
    followed, so a scan never leaves the root or loops; one that leads outside the root is reported once, as
    are names that are not UTF-8 and directories that cannot be listed. Directories are listed as well as
    entered, and symlinks, FIFOs and other non-files are listed too: where one stands in for a dump file, the
    loader refuses it with a reason, instead of the epoch silently waiting for a file that never comes.
    """
    # Strings, not Paths, and one directory listed at a time, read as it is walked: a scan of a big root keeps
    # one descriptor open and memory bounded by the directories still to visit, however many files there are.
    prefix = os.path.join(os.fspath(root), "")
    stack = [os.fspath(root)]
    while stack:
        directory = stack.pop()
        try:
            listing = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            reason = f"cannot list ({error.strerror or error}); files below it are not seen"
            report_once(directory, "unlisted", reason)
            continue
        with listing:
            for entry in listing:
                if is_hidden(entry.name):
                    continue
                if undecodable(entry.name):
                    report_undecodable(entry.path)
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_symlink() and symlinked_directory(entry.path, root):
                        continue
                except OSError:
                    pass  # a symlink loop or a vanishing entry: listed, and the loader says what is wrong
                relative = entry.path[len(prefix) :]
                yield relative if os.sep == "/" else relative.replace(os.sep, "/")
