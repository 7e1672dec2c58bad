"""An artifact's files → its arrays, per role: the one place dump files are opened for rendering.

Every read is bounded by the caps and confined to the dump root; only the configured fixed files (a shared
validation ground truth may live anywhere) are read from outside it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from segwatch.caps import Caps
from segwatch.errors import ArtifactError
from segwatch.intake.filearrays import ReadSession, Stored
from segwatch.intake.layout import Artifact
from segwatch.intake.npz import load_dump_file

__all__ = ["load_artifact"]


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
                max_file_bytes=caps.max_file_bytes,
                max_pixels=caps.max_pixels,
                root=None if path in fixed else root,
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
