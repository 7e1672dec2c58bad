"""Safe `.npz` loading: one archive per epoch holding named arrays (`np.savez`, `np.savez_compressed`).

The same promises as for `.npy` files hold: nothing is unpickled (each member's `.npy` header is parsed and
checked here, numpy's loader is never called), every size is checked against the caps before anything is
decompressed (a zip bomb is refused from its directory alone, and decompression stops at the size the directory
promised), and an archive still being written is "not ready", not corrupt.

Read through files.py, the one entry for `.npy` files and archive members alike.

An archive is written front to back: local entries first, the central directory last. A file that starts like
a zip archive but has no end-of-directory record yet is still being written.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from segwatch.errors import ArtifactError, NotReadyError
from segwatch.intake.npy import (
    NpyHeader,
    _check_caps,
    _open_regular_file,
    _read_header,
)
from segwatch.intake.reads import RETRYABLE_ERRNOS, os_error

_LOCAL_ENTRY = b"PK\x03\x04"
_END_OF_DIRECTORY = b"PK\x05\x06"
# The end-of-directory record is 22 bytes plus a comment of at most 64 KiB.
_TAIL_BYTES = 22 + 65535
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


def check_archive(
    path: Path,
    members: Iterable[str],
    *,
    max_file_bytes: int | None = None,
    max_pixels: int | None = None,
    root: Path | None = None,
) -> dict[str, NpyHeader]:
    """The headers of `members`, once the archive is whole and each member passed every check; no array
    data is decompressed. Raises NotReadyError while the archive is still being written."""
    with _open_archive(path, max_file_bytes, root) as archive:
        return {name: _member_header(archive, path, name, max_file_bytes, max_pixels)[1] for name in members}


def load_member(
    path: Path, member: str, *, max_file_bytes: int, max_pixels: int, root: Path | None = None
) -> np.ndarray:
    """The array stored as `member` in the archive `path`, read-only, after every check passed."""
    with _open_archive(path, max_file_bytes, root) as archive:
        info, header = _member_header(archive, path, member, max_file_bytes, max_pixels)
        label = f"{path}:{member}"
        try:
            with archive.open(info) as stream:
                stream.read(header.data_offset)
                data = stream.read(header.expected_size - header.data_offset)
                stream.read(1)  # reaching the end checks the CRC
        except OSError as exc:
            if exc.errno in RETRYABLE_ERRNOS:
                raise os_error(label, "read", exc) from exc
            raise ArtifactError(f"{label}: corrupt archive member: {exc}") from exc
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            raise ArtifactError(f"{label}: corrupt archive member: {exc}") from exc
    if len(data) != header.expected_size - header.data_offset:
        raise ArtifactError(f"{label}: corrupt: member ends before its header's promise")
    array = np.frombuffer(data, dtype=header.dtype)
    return array.reshape(header.shape, order="F" if header.fortran_order else "C")


@contextlib.contextmanager
def _open_archive(path: Path, max_file_bytes: int | None, root: Path | None) -> Iterator[zipfile.ZipFile]:
    with _open_regular_file(path, root) as fp:
        opened = _identity(fp, path)
        size = opened[1]
        if max_file_bytes is not None and size > max_file_bytes:
            raise ArtifactError(f"{path}: {size} bytes, more than the cap of {max_file_bytes}")
        _check_whole(fp, path, size)
        try:
            archive = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
            _raise_if_changed(fp, path, opened, exc)
            raise ArtifactError(f"{path}: corrupt .npz archive: {exc}") from exc
        with archive:
            try:
                yield archive
            except NotReadyError:
                raise
            except ArtifactError as exc:
                # A member that reads as damaged may only have been rewritten under us.
                _raise_if_changed(fp, path, opened, exc)
                raise
        _raise_if_changed(fp, path, opened, None)


def _identity(fp: BinaryIO, path: Path) -> tuple[int, int, int, int]:
    try:
        result = os.fstat(fp.fileno())
    except OSError as exc:
        raise os_error(path, "stat", exc) from exc
    return (result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns)


def _raise_if_changed(
    fp: BinaryIO, path: Path, opened: tuple[int, int, int, int], cause: BaseException | None
) -> None:
    if _identity(fp, path) != opened:
        raise NotReadyError(f"{path}: changed while reading; retrying once it settles") from cause


def _check_whole(fp: BinaryIO, path: Path, size: int) -> None:
    head = fp.read(len(_LOCAL_ENTRY))
    if head != _LOCAL_ENTRY[: len(head)]:
        raise ArtifactError(f"{path}: not a .npz archive (starts with {head!r}, expected {_LOCAL_ENTRY!r})")
    fp.seek(max(0, size - _TAIL_BYTES))
    if _END_OF_DIRECTORY not in fp.read():
        raise NotReadyError(f"{path}: still being written: {size} bytes and no archive directory yet")
    fp.seek(0)


def _member_header(
    archive: zipfile.ZipFile, path: Path, member: str, max_file_bytes: int | None, max_pixels: int | None
) -> tuple[zipfile.ZipInfo, NpyHeader]:
    names = archive.namelist()
    name = member if member in names else f"{member}.npy"
    label = f"{path}:{member}"
    if name not in names:
        shown = ", ".join(n.removesuffix(".npy") for n in names[:20])
        raise ArtifactError(f"{label}: no member {member!r} in the archive (it holds: {shown or 'nothing'})")
    info = archive.getinfo(name)
    if info.compress_type not in _METHODS:
        raise ArtifactError(
            f"{label}: compression method {info.compress_type} refused (expected stored or deflated)"
        )
    # The directory's promise bounds everything read below: zipfile stops decompressing at file_size.
    if max_file_bytes is not None and info.file_size > max_file_bytes:
        raise ArtifactError(
            f"{label}: member unpacks to {info.file_size} bytes ({info.compress_size} packed), "
            f"more than the cap of {max_file_bytes}"
        )
    try:
        with archive.open(info) as stream:
            header = _read_header(stream, Path(label), info.file_size)  # type: ignore[arg-type]
    except NotReadyError as exc:
        # The archive is whole, so a member shorter than its header is damaged, not unfinished.
        raise ArtifactError(f"{label}: corrupt member: {exc}") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise ArtifactError(f"{label}: corrupt archive member: {exc}") from exc
    _check_caps(header, Path(label), max_file_bytes=max_file_bytes, max_pixels=max_pixels)
    if header.expected_size != info.file_size:
        raise ArtifactError(
            f"{label}: corrupt: the member holds {info.file_size} bytes but its header promises "
            f"{header.expected_size}"
        )
    return info, header
