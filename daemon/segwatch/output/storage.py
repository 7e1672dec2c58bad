"""The logdir's own files, wherever the logdir is: a local path, or a URL TensorFlow's filesystem layer serves
(`gs://`, `s3://` with tensorflow-io, `hdfs://`, ...).

Local files get the strongest durability the OS offers (fsync of the file and of its directory); remote ones
get what their filesystem gives, through `tf.io.gfile`, the same layer the event files are written through.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from segwatch.intake.paths import is_hidden
from segwatch.tfquiet import import_tensorflow

# A scheme such as gs:// or s3:// marks a logdir that TensorFlow's filesystem layer opens, not a local path.
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str) -> bool:
    """A URL, not a local path: the one test, shared by the config (which keeps a URL verbatim) and the output."""
    return URL_SCHEME.match(path) is not None


def join(base: str, *names: str) -> str:
    if is_url(base):
        return "/".join([base.rstrip("/"), *names])
    return os.path.join(base, *names)


def _gfile() -> Any:
    import_tensorflow()  # quietly, the first time: only URL paths get here
    import tensorflow as tf

    return tf.io.gfile


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None if there is no such file."""
    if not is_url(path):
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None
    gfile = _gfile()
    if not gfile.exists(path):
        return None
    with gfile.GFile(path, "rb") as handle:
        return bytes(handle.read())


def write_atomically(path: str, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new content, never a mix."""
    if is_url(path):
        gfile = _gfile()
        gfile.makedirs(path.rsplit("/", 1)[0])
        staging = f"{path}.{secrets.token_hex(4)}.tmp"
        with gfile.GFile(staging, "wb") as handle:
            handle.write(data)
        gfile.rename(staging, path, overwrite=True)
        return
    directory = Path(path).parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=Path(path).name + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    _fsync_directory(directory)


def move(source: str, target: str) -> None:
    """Rename `source` to `target` (creating target's directory), durably where the OS allows."""
    if is_url(source):
        gfile = _gfile()
        gfile.makedirs(target.rsplit("/", 1)[0])
        gfile.rename(source, target, overwrite=False)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, target)
    _fsync_directory(Path(target).parent)
    _fsync_directory(Path(source).parent)


def exists(path: str) -> bool:
    return os.path.lexists(path) if not is_url(path) else bool(_gfile().exists(path))


def remove(path: str) -> None:
    """Delete the file `path` if it is there."""
    if is_url(path):
        gfile = _gfile()
        if gfile.exists(path):
            gfile.remove(path)
        return
    Path(path).unlink(missing_ok=True)
    _fsync_directory(Path(path).parent)


def subdirectories(path: str) -> list[str]:
    """Names of the direct, non-hidden subdirectories of `path` (symlinks not followed locally)."""
    if not is_url(path):
        if not os.path.isdir(path):
            return []
        return sorted(
            entry.name
            for entry in os.scandir(path)
            if not is_hidden(entry.name) and entry.is_dir(follow_symlinks=False)
        )
    gfile = _gfile()
    if not gfile.isdir(path):
        return []
    names = (name.rstrip("/") for name in gfile.listdir(path))
    return sorted(name for name in names if not is_hidden(name) and gfile.isdir(join(path, name)))


def glob_in(directory: str, name_pattern: str) -> list[str]:
    """Files in `directory` whose names match the shell pattern `name_pattern`. The directory is listed, not
    globbed, so its own name may hold glob characters (`lr[0.1]`)."""
    import fnmatch

    try:
        names = os.listdir(directory) if not is_url(directory) else _url_names(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(join(directory, name) for name in names if fnmatch.fnmatchcase(name, name_pattern))


def _url_names(directory: str) -> list[str]:
    gfile = _gfile()
    if not gfile.isdir(directory):
        return []
    return [name.rstrip("/") for name in gfile.listdir(directory)]


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse to open directories, which is harmless.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
