"""The size caps every read of a dump file obeys, as one value (the config's `limits` section)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Caps"]


@dataclass(frozen=True)
class Caps:
    """What one dump file may cost: its size on disk and the elements one array may hold. A file over either
    cap is set aside before anything is allocated for it."""

    max_file_bytes: int
    max_pixels: int
