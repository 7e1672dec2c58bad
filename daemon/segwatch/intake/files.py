"""Dump files → arrays: the one entry for reading them, whether `.npy` files or members of `.npz` archives.

Every look at a dump file goes through here, whether it only asks "is it whole?" (readiness, explain) or
reads the array (the processor): each is bounded by the caps and confined to the dump root, so a symlink that
leads out of the root is refused before anything behind it is opened. Only the configured fixed files (a
shared validation ground truth may live anywhere) are read from outside it, and only when the caller names
them (`root_for`).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from segwatch.caps import Caps
from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import Stored
from segwatch.intake.layout import ARCHIVE_SUFFIX, Artifact
from segwatch.intake.npy import NpyHeader, check_complete, load_array, open_array
from segwatch.intake.npz import check_archive, load_member
from segwatch.intake.reads import ReadSession

__all__ = ["check_dump_file", "is_archive", "load_artifact", "load_dump_file", "root_for"]


def is_archive(path: str | Path) -> bool:
    return str(path).endswith(ARCHIVE_SUFFIX)


def root_for(path: str, root: Path, fixed: Collection[str]) -> Path | None:
    """The root `path` must stay inside: the dump root, or none for a configured fixed file."""
    return None if path in fixed else root


def check_dump_file(path: Path, member: str | None, *, caps: Caps, root: Path | None) -> NpyHeader:
    """The header of the array a dump file holds, once the file is whole; no array data is read.

    Raises NotReadyError while the file (or the archive) is still being written, ArtifactError for a file
    that is bad for good: over a cap, outside `root`, not an array.
    """
    if member is None and not is_archive(path):
        return check_complete(path, root, max_file_bytes=caps.max_file_bytes, max_pixels=caps.max_pixels)
    name = member or path.stem
    headers = check_archive(
        path, [name], max_file_bytes=caps.max_file_bytes, max_pixels=caps.max_pixels, root=root
    )
    return headers[name]


def load_dump_file(
    path: Path, member: str | None, *, caps: Caps, root: Path | None, reads: ReadSession | None = None
) -> Stored:
    """The array a dump file holds: a `.npy` file, or the member `member` of an `.npz` archive.

    With `reads`, a `.npy` file stays on disk as a FileArray read by offset (its descriptor owned by `reads`);
    without, and for archive members, the array is read into memory.
    """
    limits = {"max_file_bytes": caps.max_file_bytes, "max_pixels": caps.max_pixels}
    if member is None and not is_archive(path):
        if reads is not None:
            return open_array(path, reads, root=root, **limits)
        return load_array(path, root=root, **limits)
    return load_member(path, member or path.stem, root=root, **limits)


def load_artifact(
    artifact: Artifact,
    *,
    caps: Caps,
    root: Path,
    fixed: Collection[str] = (),
    reads: ReadSession | None = None,
) -> dict[str, list[Stored]]:
    """The arrays of every file of `artifact`, by role, in the order of its files.

    With `reads`, `.npy` files stay on disk and are read by offset (their descriptors owned by `reads`);
    without, they are read into memory. Raises ArtifactError when roles hold different numbers of files (one
    file may stand for every item, as a fixed ground truth does).
    """
    arrays = {
        role: [
            load_dump_file(
                Path(path),
                artifact.members.get(role),
                caps=caps,
                root=root_for(path, root, fixed),
                reads=reads,
            )
            for path in paths
        ]
        for role, paths in artifact.files.items()
    }
    counts = {role: len(found) for role, found in arrays.items()}
    if len(set(counts.values())) > 1 and max(counts.values()) > 1:
        detail = ", ".join(f"{role} {n}" for role, n in sorted(counts.items()))
        raise ArtifactError(f"{artifact.label}: different numbers of item files: {detail}")
    return arrays
