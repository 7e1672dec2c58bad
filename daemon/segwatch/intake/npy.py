"""Safe `.npy` loading: the header is parsed here, range-checked, checked against the file size and the caps,
and only then is any data read, by offset (`filearrays`): nothing is memory-mapped, nothing is unpickled.

The `.npy` layout: 6 magic bytes, a major and a minor version byte, the header length (2 bytes little-endian
in version 1.0, 4 bytes in 2.0 and 3.0), then a Python dict literal with the keys `descr`, `fortran_order`
and `shape`, then the raw array data.
"""

from __future__ import annotations

import ast
import logging
import math
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from segwatch.errors import ArtifactError, NotReadyError
from segwatch.intake.filearrays import FileArray
from segwatch.intake.paths import outside_real_root, outside_root, real_root
from segwatch.intake.reads import ReadSession, os_error

logger = logging.getLogger(__name__)

MAGIC = b"\x93NUMPY"

# Version → width of the little-endian header-length field and the header text encoding.
_LENGTH_FIELD_BYTES = {(1, 0): 2, (2, 0): 4, (3, 0): 4}
_HEADER_ENCODING = {(1, 0): "latin1", (2, 0): "latin1", (3, 0): "utf8"}
_PREAMBLE_BYTES = len(MAGIC) + 2  # magic + major + minor

# numpy's own limit: headers it writes stay far below this, and literal_eval on a huge literal is costly.
MAX_HEADER_BYTES = 10_000

_REQUIRED_KEYS = frozenset({"descr", "fortran_order", "shape"})

# (kind, itemsize) pairs that may be loaded: plain numbers only, never objects, strings or records.
_ALLOWED_DTYPES = frozenset(
    [("b", 1)]
    + [(kind, size) for kind in "iu" for size in (1, 2, 4, 8)]
    + [("f", size) for size in (2, 4, 8)]
)
_ALLOWED_DESCRIPTION = "bool, int8..int64, uint8..uint64, float16/32/64"

# No filesystem holds a file this large; a header promising more is forged, not unfinished.
_MAX_PLAUSIBLE_BYTES = 2**63 - 1
# numpy itself stops at 64 dimensions; no dump needs more than a handful, and every count below stays small.
MAX_DIMENSIONS = 32


@dataclass(frozen=True)
class NpyHeader:
    """What a `.npy` header promises about the array that follows it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int

    @property
    def element_count(self) -> int:
        return math.prod(self.shape)

    @property
    def expected_size(self) -> int:
        """The exact size in bytes of a complete file with this header."""
        return self.data_offset + self.dtype.itemsize * self.element_count


def check_complete(
    path: Path,
    root: Path | None = None,
    /,
    *,
    max_file_bytes: int | None = None,
    max_pixels: int | None = None,
) -> NpyHeader:
    """Return the header if the file holds exactly what it promises; no array data is read.

    Raises NotReadyError while the file is shorter than promised. The caps are optional here, but passing
    them lets a forged header (promising terabytes) be refused at once instead of being waited on forever.
    With `root`, a path whose symlinks lead outside it is refused before it is opened.
    """
    with _open_regular_file(path, root) as fp:
        return _checked_header(fp, path, max_file_bytes=max_file_bytes, max_pixels=max_pixels)


def load_array(path: Path, *, max_file_bytes: int, max_pixels: int, root: Path | None = None) -> np.ndarray:
    """Return the array in `path`, read in full into private memory (read-only), after the header passed
    every check. A file that changes while it is read raises NotReadyError ("changed while reading").

    With `root`, a path whose symlinks lead outside it is refused before it is opened.
    """
    with ReadSession() as reads:
        stored = open_array(path, reads, max_file_bytes=max_file_bytes, max_pixels=max_pixels, root=root)
        array = np.asarray(stored)
        reads.check_unchanged()
    array.flags.writeable = False
    return array


def open_array(
    path: Path, reads: ReadSession, *, max_file_bytes: int, max_pixels: int, root: Path | None = None
) -> FileArray:
    """The array in `path` as a FileArray over a descriptor `reads` owns, after the header passed every check.

    Reading the descriptor we validated means the file we read is the file we checked.
    """
    opened = reads.adopt(_open_descriptor(path, root), path)
    with os.fdopen(opened.fd, "rb", closefd=False) as fp:
        header = _checked_header(fp, path, max_file_bytes=max_file_bytes, max_pixels=max_pixels)
    logger.debug("opened %s: shape %s, dtype %s", path, _shape_text(header.shape), header.dtype)
    return FileArray.of(opened, header.shape, header.dtype, header.data_offset, header.fortran_order)


def _checked_header(
    fp: BinaryIO, path: Path, *, max_file_bytes: int | None, max_pixels: int | None
) -> NpyHeader:
    """The header of an open file, after the caps (checked first: nothing is read past a forged header) and
    the size contract (short: still being written; long: corrupt)."""
    size = _file_size(fp, path)
    header = _read_header(fp, path, size)
    _check_caps(header, path, max_file_bytes=max_file_bytes, max_pixels=max_pixels)
    _check_size(header, path, size)
    return header


def _open_regular_file(path: Path, root: Path | None = None) -> BinaryIO:
    return os.fdopen(_open_descriptor(path, root), "rb")


def _open_descriptor(path: Path, root: Path | None = None) -> int:
    if root is not None:
        # Checked before opening: opening a device or FIFO elsewhere can have effects of its own.
        _refuse_outside(path, root, outside_root(path, root))
    # O_NONBLOCK keeps a FIFO dropped into the dump root from blocking the daemon on open; it changes
    # nothing for regular files.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        # A permission or a descriptor shortage can heal: those wait and are retried, the rest set aside.
        raise os_error(path, "open", exc) from exc
    try:
        if root is not None:
            # A symlink swapped in between the check and the open: what the descriptor holds decides.
            _refuse_outside(path, root, _opened_outside(fd, root))
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            raise os_error(path, "stat", exc) from exc
        if not stat.S_ISREG(mode):
            raise ArtifactError(f"{path}: not a regular file (a {_file_kind(mode)})")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _refuse_outside(path: Path, root: Path, target: str | None) -> None:
    if target is not None:
        raise ArtifactError(f"{path}: leads outside the watch root {root} (to {target}); not read")


def _opened_outside(fd: int, root: Path) -> str | None:
    """Where an open descriptor's file is, if outside `root`; None when inside or unknowable (no /proc)."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    # The kernel's name for an open file is already canonical: no symlinks left to resolve.
    return outside_real_root(opened, real_root(os.fspath(root))) if opened.startswith("/") else None


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def _file_size(fp: BinaryIO, path: Path) -> int:
    try:
        return os.fstat(fp.fileno()).st_size
    except OSError as exc:
        raise os_error(path, "stat", exc) from exc


def _read_exactly(fp: BinaryIO, path: Path, count: int) -> bytes:
    try:
        return fp.read(count)
    except OSError as exc:
        raise os_error(path, "read", exc) from exc


def _not_ready(path: Path, have: int, need: int) -> NotReadyError:
    return NotReadyError(f"{path}: still being written: {have} of {need} bytes")


def _read_header(fp: BinaryIO, path: Path, size: int) -> NpyHeader:
    preamble = _read_exactly(fp, path, _PREAMBLE_BYTES)
    magic = preamble[: len(MAGIC)]
    # A prefix that already disagrees with the magic can never become a .npy file, however long we wait.
    if magic != MAGIC[: len(magic)]:
        raise ArtifactError(f"{path}: not a .npy file (magic {magic!r}, expected {MAGIC!r})")
    if len(preamble) < _PREAMBLE_BYTES:
        raise _not_ready(path, size, _PREAMBLE_BYTES)

    version = (preamble[6], preamble[7])
    length_bytes = _LENGTH_FIELD_BYTES.get(version)
    if length_bytes is None:
        supported = ", ".join(f"{major}.{minor}" for major, minor in _LENGTH_FIELD_BYTES)
        raise ArtifactError(
            f"{path}: unsupported .npy version {version[0]}.{version[1]} (expected {supported})"
        )

    length_field = _read_exactly(fp, path, length_bytes)
    if len(length_field) < length_bytes:
        raise _not_ready(path, size, _PREAMBLE_BYTES + length_bytes)
    header_length = int.from_bytes(length_field, "little")
    if header_length > MAX_HEADER_BYTES:
        raise ArtifactError(f"{path}: header of {header_length} bytes refused (at most {MAX_HEADER_BYTES})")

    data_offset = _PREAMBLE_BYTES + length_bytes + header_length
    raw = _read_exactly(fp, path, header_length)
    if len(raw) < header_length:
        raise _not_ready(path, size, data_offset)

    try:
        text = raw.decode(_HEADER_ENCODING[version])
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: header is not valid {_HEADER_ENCODING[version]} text") from exc
    try:
        fields = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ArtifactError(f"{path}: header is not a Python literal: {_clip(repr(text))}") from exc
    return _header_from_fields(fields, path, data_offset)


def _header_from_fields(fields: object, path: Path, data_offset: int) -> NpyHeader:
    if not isinstance(fields, dict):
        raise ArtifactError(f"{path}: header must be a dict, got {type(fields).__name__}")
    if fields.keys() != _REQUIRED_KEYS:
        raise ArtifactError(
            f"{path}: header keys must be {sorted(_REQUIRED_KEYS)}, "
            f"got {_clip(repr(sorted(map(repr, fields))))}"
        )

    shape = fields["shape"]
    # bool is an int subclass, but True is no dimension.
    if not isinstance(shape, tuple) or not all(type(dim) is int for dim in shape):
        raise ArtifactError(f"{path}: header shape must be a tuple of ints, got {_clip(repr(shape))}")
    # Range checks come before any arithmetic on the shape, and no message formats an unbounded number.
    if len(shape) > MAX_DIMENSIONS:
        raise ArtifactError(f"{path}: header shape has {len(shape)} dimensions (at most {MAX_DIMENSIONS})")
    if any(dim < 0 for dim in shape):
        raise ArtifactError(f"{path}: header shape {_shape_text(shape)} has a negative dimension")
    if any(dim > _MAX_PLAUSIBLE_BYTES for dim in shape):
        raise ArtifactError(f"{path}: header shape {_shape_text(shape)} has a dimension above 2**63 - 1")

    fortran_order = fields["fortran_order"]
    if not isinstance(fortran_order, bool):
        raise ArtifactError(
            f"{path}: header fortran_order must be True or False, got {_clip(repr(fortran_order))}"
        )

    return NpyHeader(
        shape=shape,
        dtype=_dtype_from_descr(fields["descr"], path),
        fortran_order=fortran_order,
        data_offset=data_offset,
    )


def _dtype_from_descr(descr: object, path: Path) -> np.dtype:
    # A list descr is a record layout; only plain type strings are considered at all.
    if isinstance(descr, list):
        raise ArtifactError(f"{path}: structured dtype refused (expected {_ALLOWED_DESCRIPTION})")
    if not isinstance(descr, str):
        raise ArtifactError(f"{path}: header descr must be a dtype string, got {_clip(repr(descr))}")
    try:
        # A deprecated alias ('a') would print numpy's warning to stderr, outside the log: refused as well.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            dtype = np.dtype(descr)
    except Exception as exc:
        # Not only TypeError and ValueError: numpy parses comma-separated type strings with a parser of its
        # own, and a forged one raises SyntaxError (seen by fuzzing: "|, 4), } 1u1").
        raise ArtifactError(f"{path}: header descr {_clip(repr(descr))} is not a dtype") from exc
    if dtype.hasobject:
        raise ArtifactError(f"{path}: dtype {dtype} refused (pickled data is never loaded)")
    if (
        dtype.fields is not None
        or dtype.subdtype is not None
        or (dtype.kind, dtype.itemsize) not in _ALLOWED_DTYPES
    ):
        raise ArtifactError(f"{path}: dtype {dtype} refused (expected {_ALLOWED_DESCRIPTION})")
    return dtype


def _check_caps(header: NpyHeader, path: Path, *, max_file_bytes: int | None, max_pixels: int | None) -> None:
    shape = _shape_text(header.shape)
    if header.element_count == 0:
        # "Complete" at its header already, with nothing in it to show or count.
        raise ArtifactError(f"{path}: shape {shape} holds no elements; nothing to show")
    if max_pixels is not None and header.element_count > max_pixels:
        raise ArtifactError(
            f"{path}: shape {shape} holds {_count_text(header.element_count)} elements, "
            f"more than the cap of {max_pixels}"
        )
    if max_file_bytes is not None and header.expected_size > max_file_bytes:
        raise ArtifactError(
            f"{path}: header promises {_count_text(header.expected_size)} bytes, "
            f"more than the cap of {max_file_bytes}"
        )
    if header.expected_size > _MAX_PLAUSIBLE_BYTES:
        raise ArtifactError(f"{path}: header shape {shape} promises more than any file can hold")


def _check_size(header: NpyHeader, path: Path, size: int) -> None:
    if size < header.expected_size:
        raise _not_ready(path, size, header.expected_size)
    if size > header.expected_size:
        raise ArtifactError(
            f"{path}: corrupt: {size} bytes on disk but the header promises {header.expected_size}"
        )


def _count_text(count: int) -> str:
    """A count for a message; a forged shape's product can have hundreds of digits, so big ones are named."""
    return str(count) if count <= _MAX_PLAUSIBLE_BYTES else "more than 2**63"


def _shape_text(shape: tuple[int, ...]) -> str:
    """A shape for a message: its dimensions are range-checked first (each at most 19 digits), then clipped."""
    return _clip(repr(shape))


def _clip(quoted: str, limit: int = 80) -> str:
    """Keep a repr() of a hostile file's content short in a message; repr already keeps it on one line."""
    return quoted if len(quoted) <= limit else quoted[: limit - 3] + "..."
