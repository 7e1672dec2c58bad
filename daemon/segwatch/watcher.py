"""Finding dump files: the start-up scan and periodic rescans (live observers build on these)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def scan_tree(root: Path) -> Iterator[str]:
    """Every regular file below `root`, as a `/`-separated path relative to it.

    Hidden files and directories are skipped (producers stage partial epochs there), and symlinked
    directories are not followed, so a scan never leaves the root or loops.
    """
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path).relative_to(root).as_posix()
            except OSError:
                continue
