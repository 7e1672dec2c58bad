"""What a summary is, apart from how its bytes reach disk: tag, payload and TensorBoard plugin metadata. Pure.

The payloads follow TensorBoard's plugins exactly, so its loaders serve what we write as if `tf.summary.image`
and `tf.summary.scalar` had written it — without re-encoding the PNGs we already have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata


@dataclass(frozen=True)
class Summary:
    """One value for one tag at one step.

    `payload` is what the plugin stores in the summary tensor: for images the list
    `[width, height, png, png, ...]` of byte strings, for scalars a float, for text a string.
    """

    tag: str
    payload: tuple[bytes, ...] | float | str
    metadata: bytes


def image_summary(
    tag: str, pngs: Sequence[bytes], *, width: int, height: int, description: str = ""
) -> Summary:
    """An image-plugin summary holding already-encoded PNGs that all share one size."""
    if not pngs:
        raise ValueError(f"image summary {tag!r} needs at least one PNG, got none")
    meta = image_metadata.create_summary_metadata(display_name=None, description=description)
    payload = (str(width).encode(), str(height).encode(), *pngs)
    return Summary(tag, payload, meta.SerializeToString())


def scalar_summary(tag: str, value: float, *, description: str = "") -> Summary:
    meta = scalar_metadata.create_summary_metadata(display_name=None, description=description)
    return Summary(tag, float(value), meta.SerializeToString())


def text_summary(tag: str, markdown: str, *, description: str = "") -> Summary:
    meta = text_metadata.create_summary_metadata(display_name=None, description=description)
    return Summary(tag, markdown, meta.SerializeToString())
