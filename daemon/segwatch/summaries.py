"""What a summary is, apart from how its bytes reach disk: tag, payload and TensorBoard plugin metadata. Pure.

The payloads follow TensorBoard's plugins exactly, so its loaders serve what we write as if `tf.summary.image`
and `tf.summary.scalar` had written it — without re-encoding the PNGs we already have.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2
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
    payload = (str(width).encode(), str(height).encode(), *pngs)
    return Summary(tag, payload, _image_metadata(description))


def scalar_summary(tag: str, value: float, *, description: str = "") -> Summary:
    return Summary(tag, float(value), _scalar_metadata(description))


def text_summary(tag: str, markdown: str, *, description: str = "") -> Summary:
    return Summary(tag, markdown, _text_metadata(description))


# The metadata of a tag is fixed by its configuration (plugin and description): built once, not every epoch.
@functools.lru_cache(maxsize=256)
def _image_metadata(description: str) -> bytes:
    return bytes(
        image_metadata.create_summary_metadata(display_name=None, description=description).SerializeToString()
    )


@functools.lru_cache(maxsize=256)
def _scalar_metadata(description: str) -> bytes:
    return bytes(
        scalar_metadata.create_summary_metadata(
            display_name=None, description=description
        ).SerializeToString()
    )


@functools.lru_cache(maxsize=256)
def _text_metadata(description: str) -> bytes:
    return bytes(
        text_metadata.create_summary_metadata(display_name=None, description=description).SerializeToString()
    )


def serialized(summary: Summary) -> bytes:
    """The summary as a serialized `Summary` protocol buffer holding one value: the tensor TensorFlow's
    `tf.summary.write` would store (a string vector for images, a float32 or string scalar otherwise)."""
    tensor = tensor_pb2.TensorProto()
    payload = summary.payload
    if isinstance(payload, tuple):
        tensor.dtype = types_pb2.DT_STRING
        tensor.tensor_shape.dim.add(size=len(payload))
        tensor.string_val.extend(payload)
    elif isinstance(payload, float):
        tensor.dtype = types_pb2.DT_FLOAT
        tensor.float_val.append(payload)
    else:
        tensor.dtype = types_pb2.DT_STRING
        tensor.string_val.append(payload.encode())
    value = summary_pb2.Summary.Value(tag=summary.tag, tensor=tensor)
    value.metadata.ParseFromString(summary.metadata)
    return bytes(summary_pb2.Summary(value=[value]).SerializeToString())
