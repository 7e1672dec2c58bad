"""Arrays that stay on disk and are read by offset: nothing is ever memory-mapped.

A shared memory map of a file someone else can truncate turns the producer's next `np.save` over it into
SIGBUS, which kills the process outright, and some filesystems (FUSE with `direct_io`: sshfs, object-store
mounts) cannot map at all. A FileArray instead knows where its elements lie in an open file and reads only the
bytes asked for, with positional reads into buffers the caller owns. A file that shrinks under a read gives a
short read, raised as "changed while reading" (a NotReadyError: retry once the file settles), and
`ReadSession.check_unchanged` catches a file rewritten in place at the same size.

Views cost nothing: integer and slice indexing, `transpose`, and a same-width `view(dtype)` only change the
offset, shape and strides. Bytes are read by `read_into`/`np.asarray` (the view, in full), `sample_rows`
(nearest sampling reads just the rows it keeps) and `flat_chunks`/`paired_chunks` (metrics, in chunks of a
fixed size through one reused buffer).

The open files themselves, and the session that checks them unchanged, are reads.py's: this module needs of
a file only its descriptor and a checked positional read (`Source`).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import numpy as np

__all__ = [
    "FileArray",
    "Source",
    "Stored",
    "as_ndarray",
    "flat_chunks",
    "paired_chunks",
    "sample_rows",
]

# A strided read whose bytes lie within this span is done as one read and gathered in memory; wider ones are
# split along their widest axis. Bounds every temporary buffer here.
_GATHER_SPAN = 1 << 20
# Rows this close are read together, gaps included: one read of a few KiB more costs less than another call.
_MERGE_GAP = 16 << 10


class _Scratch(threading.local):
    """One reused buffer per thread for gathered reads: fresh buffers would be zeroed and faulted in by the
    kernel on every read, which costs as much as the copy."""

    buffer = np.empty(0, dtype=np.uint8)

    def get(self, size: int) -> np.ndarray:
        if size > len(self.buffer):
            fresh = np.empty(max(size, 2 * _GATHER_SPAN), dtype=np.uint8)
            if size > 4 * _GATHER_SPAN:
                return fresh[:size]  # an odd large one: not kept
            self.buffer = fresh
        return self.buffer[:size]


_scratch = _Scratch()


class Source(Protocol):
    """What a FileArray reads from: an open file (reads.OpenFile)."""

    @property
    def fd(self) -> int: ...

    @property
    def path(self) -> Path: ...

    def read_into(self, buffer: np.ndarray, offset: int) -> None:
        """Fill the C-contiguous `buffer` from `offset`, or raise "changed while reading" on a short read."""


class FileArray:
    """An array still in a file: shape, dtype, and the byte offset and strides of its elements."""

    __slots__ = ("dtype", "file", "offset", "shape", "strides")

    def __init__(
        self, file: Source, shape: tuple[int, ...], dtype: np.dtype, offset: int, strides: tuple[int, ...]
    ) -> None:
        self.file = file
        # Typed as ndarray.shape is, so that code written for arrays takes either.
        self.shape: tuple[Any, ...] = shape
        self.dtype = dtype
        self.offset = offset
        self.strides = strides

    @classmethod
    def of(
        cls, file: Source, shape: tuple[int, ...], dtype: np.dtype, offset: int, fortran: bool
    ) -> FileArray:
        strides: list[int] = []
        step = dtype.itemsize
        for dim in reversed(shape) if not fortran else shape:
            strides.append(step)
            step *= max(dim, 1)
        return cls(file, shape, dtype, offset, tuple(reversed(strides)) if not fortran else tuple(strides))

    # --- what numpy code asks of an array ---------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"FileArray({self.file.path}, shape={self.shape}, dtype={self.dtype})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.ndim > 1 and self.transpose().is_contiguous():
            # Column-major in the file: one read into a column-major array (its transpose is C-contiguous).
            out = np.empty(self.shape, dtype=self.dtype, order="F")
            self.file.read_into(out.T, self.offset)
        else:
            out = np.empty(self.shape, dtype=self.dtype)
            self.read_into(out)
        return out if dtype is None else out.astype(dtype, copy=False)

    # Comparisons read the view: without these, `stored == 255` would compare identities and say False.
    def __eq__(self, other: object) -> Any:
        return np.asarray(self) == other

    def __ne__(self, other: object) -> Any:
        return np.asarray(self) != other

    __hash__ = None  # type: ignore[assignment]

    def astype(self, dtype: Any, copy: bool = True) -> np.ndarray:
        return np.asarray(self).astype(dtype, copy=False)

    def view(self, dtype: Any) -> FileArray:
        """The same bytes as another dtype of the same width (bool as uint8, float16 as int16)."""
        new = np.dtype(dtype)
        if new.itemsize != self.itemsize:
            raise ValueError(f"a FileArray view must keep the item size, {self.dtype} -> {new}")
        return FileArray(self.file, self.shape, new, self.offset, self.strides)

    def transpose(self, *axes: Any) -> FileArray:
        order = tuple(axes[0]) if len(axes) == 1 and not isinstance(axes[0], int) else tuple(axes)
        if not order:
            order = tuple(reversed(range(self.ndim)))
        if sorted(order) != list(range(self.ndim)):
            raise ValueError(f"axes {order} are not a permutation of {self.ndim} axes")
        return FileArray(
            self.file,
            tuple(self.shape[a] for a in order),
            self.dtype,
            self.offset,
            tuple(self.strides[a] for a in order),
        )

    def __getitem__(self, key: Any) -> Any:
        """Integers and slices (positive steps) give views; a 1-D integer array on the first axis reads those
        entries and gives an ndarray."""
        if isinstance(key, np.ndarray | list) and not isinstance(key, bool):
            return self.take_first(np.asarray(key, dtype=np.intp))
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) > self.ndim:
            raise IndexError(f"too many indices for a {self.ndim}-d FileArray")
        offset = self.offset
        shape: list[int] = []
        strides: list[int] = []
        for axis, (dim, stride) in enumerate(zip(self.shape, self.strides, strict=True)):
            if axis >= len(keys):
                shape.append(dim)
                strides.append(stride)
                continue
            part = keys[axis]
            if isinstance(part, slice):
                start, stop, step = part.indices(dim)
                if step < 1:
                    raise IndexError("FileArray slices take positive steps only")
                count = len(range(start, stop, step))
                offset += start * stride if count else 0
                shape.append(count)
                strides.append(stride * step)
            elif isinstance(part, int | np.integer):
                index = int(part) + (dim if part < 0 else 0)
                if not 0 <= index < dim:
                    raise IndexError(f"index {int(part)} is out of bounds for axis {axis} with size {dim}")
                offset += index * stride
            else:
                raise IndexError(f"FileArray takes integers and slices, got {type(part).__name__}")
        return FileArray(self.file, tuple(shape), self.dtype, offset, tuple(strides))

    def take_first(self, indices: np.ndarray) -> np.ndarray:
        """The entries `indices` of the first axis, read into a new array (only those entries are read)."""
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        if len(indices) == 0:
            return out
        indices = np.where(indices < 0, indices + self.shape[0], indices)
        if indices.min() < 0 or indices.max() >= self.shape[0]:
            raise IndexError(f"row indices outside [0, {self.shape[0]})")
        if len(indices) == 1 or bool((np.diff(indices) > 0).all()):
            self._read_rows(indices, out)
            return out
        unique, inverse = np.unique(indices, return_inverse=True)
        compact = np.empty((len(unique), *self.shape[1:]), dtype=self.dtype)
        self._read_rows(unique, compact)
        return compact[inverse]

    def _read_rows(self, rows: np.ndarray, out: np.ndarray) -> None:
        """out[k] = self[rows[k]] for ascending `rows` into a C-contiguous `out`: one read per run of nearby
        rows (at most `_GATHER_SPAN` each), gathered in memory; a far-apart contiguous row goes straight in."""
        first = self[0]
        row_span, contiguous, stride = first._span(), first.is_contiguous(), self.strides[0]
        if not contiguous and row_span > _GATHER_SPAN:
            for position, row in enumerate(rows.tolist()):
                self[row].read_into(out[position])
            return
        # Runs of nearby rows, each within one aligned _GATHER_SPAN block of the file (found without a loop).
        offsets = rows * stride
        far = np.diff(rows) * stride - row_span > _MERGE_GAP
        breaks = np.flatnonzero(far | (np.diff(offsets // _GATHER_SPAN) != 0)) + 1
        bounds = [0, *breaks.tolist(), len(rows)]
        listed = rows.tolist()
        row_bytes = first.nbytes
        flat = out.reshape(-1).view(np.uint8).data  # out is C-contiguous: a view, row k at k * row_bytes
        fd = self.file.fd
        for start, stop in itertools.pairwise(bounds):
            base = self.offset + listed[start] * stride
            if stop - start == 1 and contiguous:
                # The common case of sparse sampling, kept lean: one call straight into the output row.
                try:
                    got = os.preadv(fd, [flat[start * row_bytes : (start + 1) * row_bytes]], base)
                except OSError:
                    got = -1
                if got != row_bytes:  # partial, past the end, or an error: the careful path says which
                    self.file.read_into(out[start], base)
                continue
            span = (listed[stop - 1] - listed[start]) * stride + row_span
            scratch = _scratch.get(span)
            self.file.read_into(scratch, base)
            count = stop - start
            step = (listed[stop - 1] - listed[start]) // (count - 1) if count > 1 else 1
            if listed[stop - 1] - listed[start] == step * (count - 1) and (
                count < 3 or bool((np.diff(rows[start:stop]) == step).all())
            ):
                # Evenly spaced (a strided sample): a strided copy, much cheaper than gathering row by row.
                kept = np.ndarray(
                    (count, *self.shape[1:]),
                    dtype=self.dtype,
                    buffer=scratch,
                    strides=(stride * step, *self.strides[1:]),
                )
                out[start:stop] = kept
                continue
            spanned = np.ndarray(
                (listed[stop - 1] - listed[start] + 1, *self.shape[1:]),
                dtype=self.dtype,
                buffer=scratch,
                strides=self.strides,
            )
            out[start:stop] = spanned[rows[start:stop] - listed[start]]

    # --- reading ----------------------------------------------------------------------------------------
    def is_contiguous(self) -> bool:
        step = self.itemsize
        for dim, stride in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if dim != 1 and stride != step:
                return False
            step *= dim
        return True

    def _span(self) -> int:
        return (
            sum((dim - 1) * stride for dim, stride in zip(self.shape, self.strides, strict=True))
            + self.itemsize
        )

    def read_into(self, out: np.ndarray) -> None:
        """Fill `out` (this view's shape and dtype) with the view's elements, reading no byte outside it
        except within small gaps (at most `_GATHER_SPAN` per read)."""
        if out.shape != self.shape or out.dtype != self.dtype:
            raise ValueError(f"read_into needs {self.shape} {self.dtype}, got {out.shape} {out.dtype}")
        if self.size == 0:
            return
        if self.is_contiguous():
            if out.flags.c_contiguous:
                self.file.read_into(out, self.offset)
            else:
                buffer = np.empty(self.shape, dtype=self.dtype)
                self.file.read_into(buffer, self.offset)
                out[...] = buffer
            return
        span = self._span()
        if span <= _GATHER_SPAN:
            raw = _scratch.get(span)
            self.file.read_into(raw, self.offset)
            out[...] = np.ndarray(self.shape, dtype=self.dtype, buffer=raw, strides=self.strides)
            return
        # Too wide for one read: split along the widest axis (the outermost in the file).
        axis = max(range(self.ndim), key=lambda a: self.strides[a] if self.shape[a] > 1 else -1)
        if axis == 0 and self.ndim > 1 and out.flags.c_contiguous:
            self._read_rows(np.arange(self.shape[0]), out)
            return
        if self.ndim == 1:
            per_read = max(1, _GATHER_SPAN // self.strides[0])
            for start in range(0, self.shape[0], per_read):
                self[start : start + per_read].read_into(out[start : start + per_read])
            return
        for index in range(self.shape[axis]):
            where: tuple[Any, ...] = (*((slice(None),) * axis), index)
            self[where].read_into(out[where])


Stored: TypeAlias = np.ndarray | FileArray


def as_ndarray(array: Stored) -> np.ndarray:
    """An in-memory array: a FileArray is read in full, an ndarray comes back as it is."""
    return np.asarray(array)


def sample_rows(labels: Stored, rows: np.ndarray | slice) -> np.ndarray:
    """`labels[rows]` of an (H, W) map as an ndarray; from a file only the rows kept are read."""
    if not isinstance(labels, FileArray):
        return np.asarray(labels)[rows]
    if labels.strides[-1] != labels.itemsize and labels.strides[0] < labels.strides[-1]:
        # Column-major in the file: a row is spread over the whole map, so read the map once.
        return np.asarray(labels)[rows]
    if isinstance(rows, slice):
        kept = np.arange(*rows.indices(labels.shape[0]))  # ascending and in range: no checks needed
        out = np.empty((len(kept), *labels.shape[1:]), dtype=labels.dtype)
        if len(kept):
            labels._read_rows(kept, out)
        return out
    return labels.take_first(np.asarray(rows, dtype=np.intp))


def flat_chunks(array: Stored, pixels: int) -> Iterator[np.ndarray]:
    """The array's elements in C order, `pixels` at a time (the last chunk shorter).

    From a file each chunk is read into the same buffer: a chunk is valid only until the next one is asked
    for. A file view that is not contiguous is read whole once (it is one item, already within the caps).
    """
    if isinstance(array, FileArray) and array.is_contiguous():
        buffer = np.empty(min(pixels, array.size), dtype=array.dtype)
        for start in range(0, array.size, pixels):
            chunk = buffer[: min(pixels, array.size - start)]
            array.file.read_into(chunk, array.offset + start * array.itemsize)
            yield chunk
        return
    flat = np.asarray(array).reshape(-1)
    for start in range(0, flat.size, pixels):
        yield flat[start : start + pixels]


def paired_chunks(gt: Stored, pred: Stored, pixels: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Aligned chunks of two equally shaped arrays, as plain numpy (see `flat_chunks`)."""
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} and pred shape {pred.shape} differ")
    yield from zip(flat_chunks(gt, pixels), flat_chunks(pred, pixels), strict=True)
