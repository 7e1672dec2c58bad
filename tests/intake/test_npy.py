from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from segwatch.errors import ArtifactError, NotReadyError
from segwatch.intake.npy import NpyHeader, check_complete, load_array

GENEROUS = {"max_file_bytes": 1 << 30, "max_pixels": 1 << 28}

WriteNpy = Callable[..., Path]
WriteRaw = Callable[..., Path]
ForgeNpy = Callable[..., Path]


@pytest.fixture
def write_npy(tmp_path: Path) -> WriteNpy:
    """Save an array the way a training job would, in any .npy version."""

    def write(array: np.ndarray, name: str = "arr.npy", version: tuple[int, int] | None = None) -> Path:
        path = tmp_path / name
        with path.open("wb") as fp:
            npy_format.write_array(fp, array, version=version, allow_pickle=True)
        return path

    return write


@pytest.fixture
def write_raw(tmp_path: Path) -> WriteRaw:
    def write(content: bytes, name: str = "raw.npy") -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return write


@pytest.fixture
def forge_npy(write_raw: WriteRaw) -> ForgeNpy:
    """Write a file with a hand-made header, to say things np.save never would."""

    def forge(
        header: str, data: bytes = b"", version: tuple[int, int] = (1, 0), name: str = "forged.npy"
    ) -> Path:
        text = header.encode("latin1" if version < (3, 0) else "utf8") + b"\n"
        width = 2 if version == (1, 0) else 4
        preamble = b"\x93NUMPY" + bytes(version) + len(text).to_bytes(width, "little")
        return write_raw(preamble + text + data, name)

    return forge


def assert_plain_artifact_error(excinfo: pytest.ExceptionInfo[ArtifactError], path: Path) -> str:
    """The file is bad for good (not merely unfinished), and the message is one line naming it."""
    message = str(excinfo.value)
    assert not isinstance(excinfo.value, NotReadyError), message
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


# --- happy path -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [
        *("bool", "int8", "int16", "int32", "int64"),
        *("uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"),
    ],
)
def test_load_array_returns_a_private_read_only_copy_with_the_saved_values(
    write_npy: WriteNpy, dtype: str
) -> None:
    saved = (np.arange(2 * 3 * 5).reshape(2, 3, 5) % 7).astype(dtype)
    path = write_npy(saved)

    loaded = load_array(path, **GENEROUS)

    # Never a memory map: a map of a file the producer can truncate faults (SIGBUS) on the next read.
    assert type(loaded) is np.ndarray
    assert loaded.base is None or not isinstance(loaded.base, np.memmap)
    assert loaded.dtype == saved.dtype
    assert loaded.shape == saved.shape
    np.testing.assert_array_equal(loaded, saved)
    assert not loaded.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        loaded[0, 0, 0] = 1


def test_header_describes_the_file(write_npy: WriteNpy) -> None:
    path = write_npy(np.zeros((4, 6), dtype="<i2"))

    header = check_complete(path)

    assert header.shape == (4, 6)
    assert header.dtype == np.dtype("<i2")
    assert header.fortran_order is False
    assert header.data_offset % 64 == 0  # np.save aligns the data
    assert header.expected_size == header.data_offset + 4 * 6 * 2 == path.stat().st_size
    assert check_complete(path) == header


def test_fortran_order_gives_the_right_values(write_npy: WriteNpy) -> None:
    saved = np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4))
    path = write_npy(saved)

    assert check_complete(path).fortran_order is True
    loaded = load_array(path, **GENEROUS)

    np.testing.assert_array_equal(loaded, saved)
    assert loaded[1, 2, 3] == 23
    assert loaded[0, 1, 0] == 4


@pytest.mark.parametrize("dtype", [">i4", ">u2", ">f8", ">f2"])
def test_big_endian_values_are_right(write_npy: WriteNpy, dtype: str) -> None:
    saved = np.array([[0, 1, 2], [300, 4000, 50]], dtype=dtype)
    path = write_npy(saved)

    loaded = load_array(path, **GENEROUS)

    assert loaded.tolist() == [[0, 1, 2], [300, 4000, 50]]


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_header_version_loads(write_npy: WriteNpy, version: tuple[int, int]) -> None:
    saved = np.arange(10, dtype=np.uint8).reshape(2, 5)
    path = write_npy(saved, version=version)

    header = check_complete(path)
    loaded = load_array(path, **GENEROUS)

    assert path.read_bytes()[6:8] == bytes(version)
    assert header.expected_size == path.stat().st_size
    np.testing.assert_array_equal(loaded, saved)


@pytest.mark.parametrize(("shape", "order"), [((0,), "C"), ((0, 5), "C"), ((4, 0, 2), "C"), ((3, 0), "F")])
def test_zero_size_array_is_refused(write_npy: WriteNpy, shape: tuple[int, ...], order: str) -> None:
    path = write_npy(np.zeros(shape, dtype=np.float32, order=order))

    with pytest.raises(ArtifactError, match="holds no elements") as excinfo:
        load_array(path, **GENEROUS)

    assert_plain_artifact_error(excinfo, path)


def test_scalar_array_loads(write_npy: WriteNpy) -> None:
    path = write_npy(np.array(7, dtype=np.int16))

    loaded = load_array(path, **GENEROUS)

    assert loaded.shape == ()
    assert int(loaded) == 7


# --- unfinished files: wait, do not set aside -------------------------------------------------------------


def _cut_points(full: bytes, data_offset: int) -> dict[str, int]:
    return {
        "empty": 0,
        "in magic": 3,
        "in version": 7,
        "in header length": 9,
        "in header": data_offset - 20,
        "header without data": data_offset,
        "in data": len(full) - 1,
    }


@pytest.mark.parametrize(
    "where",
    ["empty", "in magic", "in version", "in header length", "in header", "header without data", "in data"],
)
def test_truncated_file_is_not_ready(write_npy: WriteNpy, write_raw: WriteRaw, where: str) -> None:
    full_path = write_npy(np.arange(100, dtype=np.float64), name="full.npy")
    full = full_path.read_bytes()
    cut = _cut_points(full, check_complete(full_path).data_offset)[where]
    path = write_raw(full[:cut], name="partial.npy")

    for attempt in (
        lambda: load_array(path, **GENEROUS),
        lambda: check_complete(path),
    ):
        with pytest.raises(NotReadyError, match="still being written") as excinfo:
            attempt()
        message = str(excinfo.value)
        assert message.startswith(f"{path}: ")
        assert f"{cut} of " in message


def test_truncated_data_reports_promised_size(write_npy: WriteNpy, write_raw: WriteRaw) -> None:
    full = write_npy(np.arange(100, dtype=np.float64), name="full.npy").read_bytes()
    path = write_raw(full[:-8], name="partial.npy")

    with pytest.raises(NotReadyError) as excinfo:
        check_complete(path)

    assert str(excinfo.value) == f"{path}: still being written: {len(full) - 8} of {len(full)} bytes"


def test_file_completed_later_loads(write_npy: WriteNpy, write_raw: WriteRaw) -> None:
    full = write_npy(np.arange(100, dtype=np.int32), name="full.npy").read_bytes()
    path = write_raw(full[:-40], name="growing.npy")
    with pytest.raises(NotReadyError):
        check_complete(path)

    with path.open("ab") as fp:
        fp.write(full[-40:])

    np.testing.assert_array_equal(load_array(path, **GENEROUS), np.arange(100))


def test_file_longer_than_promised_is_corrupt(write_npy: WriteNpy) -> None:
    path = write_npy(np.arange(10, dtype=np.int64))
    with path.open("ab") as fp:
        fp.write(b"\x00")

    for attempt in (lambda: load_array(path, **GENEROUS), lambda: check_complete(path)):
        with pytest.raises(ArtifactError, match="corrupt") as excinfo:
            attempt()
        assert_plain_artifact_error(excinfo, path)


# --- not .npy at all ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04" + bytes(200),
        b"\x89PNG\r\n\x1a\n" + bytes(60),
        b"NUMPY\x93\x01\x00",
        b"\x93NUMPz\x01\x00\x10\x00",
    ],
)
def test_non_npy_bytes_are_refused(write_raw: WriteRaw, content: bytes) -> None:
    path = write_raw(content)

    with pytest.raises(ArtifactError, match=r"not a \.npy file") as excinfo:
        load_array(path, **GENEROUS)

    assert_plain_artifact_error(excinfo, path)


def test_short_file_that_can_never_become_npy_is_refused_at_once(write_raw: WriteRaw) -> None:
    path = write_raw(b"ab")

    with pytest.raises(ArtifactError, match=r"not a \.npy file") as excinfo:
        check_complete(path)

    assert_plain_artifact_error(excinfo, path)


def test_directory_missing_file_and_fifo_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "dir.npy"
    directory.mkdir()
    missing = tmp_path / "missing.npy"
    targets = [(directory, "not a regular file"), (missing, "cannot open")]
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.npy"
        os.mkfifo(fifo)
        targets.append((fifo, "not a regular file"))

    for path, reason in targets:
        with pytest.raises(ArtifactError, match=reason) as excinfo:
            load_array(path, **GENEROUS)
        assert_plain_artifact_error(excinfo, path)


# --- pickle and dtypes ------------------------------------------------------------------------------------


class _MakesDirectoryWhenUnpickled:
    """A pickle payload: unpickling it calls os.mkdir on the target."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.target),))


def test_object_array_is_refused(write_npy: WriteNpy) -> None:
    path = write_npy(np.array([{"a": 1}, [2, 3]], dtype=object))

    with pytest.raises(ArtifactError) as excinfo:
        load_array(path, **GENEROUS)

    message = assert_plain_artifact_error(excinfo, path)
    assert message == f"{path}: dtype object refused (pickled data is never loaded)"


def test_pickle_payload_is_never_run(write_npy: WriteNpy, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = write_npy(np.array([_MakesDirectoryWhenUnpickled(target)], dtype=object))

    for attempt in (
        lambda: load_array(path, **GENEROUS),
        lambda: check_complete(path),
    ):
        with pytest.raises(ArtifactError, match="pickled data is never loaded"):
            attempt()
    assert not target.exists()

    # The payload is live: an unsafe loader does run it.
    np.load(path, allow_pickle=True)
    assert target.is_dir()


@pytest.mark.parametrize(
    "array",
    [
        np.array([1 + 2j], dtype=np.complex64),
        np.array(["abc"]),
        np.array([b"abc"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.array([1], dtype="timedelta64[s]"),
        np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]),
        np.zeros(2, dtype="V8"),
    ],
    ids=["complex", "str", "bytes", "datetime", "timedelta", "structured", "void"],
)
def test_dtypes_outside_the_whitelist_are_refused(write_npy: WriteNpy, array: np.ndarray) -> None:
    path = write_npy(array)

    with pytest.raises(ArtifactError, match="refused") as excinfo:
        load_array(path, **GENEROUS)

    assert_plain_artifact_error(excinfo, path)


@pytest.mark.parametrize("descr", ["<f16", "(2,)<f4", "O", "|O8", "<c16"])
def test_forged_descr_outside_the_whitelist_is_refused(forge_npy: ForgeNpy, descr: str) -> None:
    path = forge_npy(f"{{'descr': '{descr}', 'fortran_order': False, 'shape': (0,), }}")

    with pytest.raises(ArtifactError, match="refused") as excinfo:
        check_complete(path)

    assert_plain_artifact_error(excinfo, path)


# --- forged and malformed headers --------------------------------------------------------------------------


def test_forged_header_claiming_terabytes_is_refused_without_reading(forge_npy: ForgeNpy) -> None:
    # The file is only a header: a loader that waited for the data, or read it, would not say "cap".
    path = forge_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }")

    with pytest.raises(ArtifactError, match="cap") as excinfo:
        load_array(path, max_file_bytes=1 << 40, max_pixels=1 << 50)
    message = assert_plain_artifact_error(excinfo, path)
    data_offset = path.stat().st_size  # the file is only its header
    assert f"promises {8 * 10**12 + data_offset} bytes" in message

    with pytest.raises(ArtifactError, match="cap"):
        load_array(path, max_file_bytes=1 << 50, max_pixels=1 << 30)

    with pytest.raises(ArtifactError, match="cap") as excinfo:
        check_complete(path, max_file_bytes=1 << 40)
    assert_plain_artifact_error(excinfo, path)
    # Without caps the watcher can only see an unfinished file.
    with pytest.raises(NotReadyError):
        check_complete(path)


def test_header_promising_more_than_any_file_can_hold_is_refused(forge_npy: ForgeNpy) -> None:
    path = forge_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }")

    with pytest.raises(ArtifactError, match="more than any file can hold") as excinfo:
        check_complete(path)

    assert_plain_artifact_error(excinfo, path)


@pytest.mark.parametrize(
    ("limits_for_size", "allowed"),
    [
        (lambda size: {"max_file_bytes": size, "max_pixels": 60}, True),
        (lambda size: {"max_file_bytes": size, "max_pixels": 59}, False),
        (lambda size: {"max_file_bytes": size - 1, "max_pixels": 60}, False),
    ],
    ids=["at both caps", "one pixel over", "one byte over"],
)
def test_caps_are_inclusive_limits(
    write_npy: WriteNpy, limits_for_size: Callable[[int], dict[str, int]], allowed: bool
) -> None:
    path = write_npy(np.zeros((6, 10), dtype=np.uint8))
    limits = limits_for_size(path.stat().st_size)

    if allowed:
        assert load_array(path, **limits).shape == (6, 10)
    else:
        with pytest.raises(ArtifactError, match="cap") as excinfo:
            load_array(path, **limits)
        assert_plain_artifact_error(excinfo, path)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("['descr', 'fortran_order', 'shape']", "must be a dict"),
        ("{'descr': '<i4', 'shape': (1,), }", "keys"),
        ("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), 'extra': 1, }", "keys"),
        ("{'descr': '<i4', 'fortran_order': False, 'shape': [1], }", "tuple of ints"),
        ("{'descr': '<i4', 'fortran_order': False, 'shape': (1.0,), }", "tuple of ints"),
        ("{'descr': '<i4', 'fortran_order': False, 'shape': (True,), }", "tuple of ints"),
        ("{'descr': '<i4', 'fortran_order': False, 'shape': (2, -1), }", "negative"),
        ("{'descr': '<i4', 'fortran_order': 0, 'shape': (1,), }", "fortran_order"),
        ("{'descr': 4, 'fortran_order': False, 'shape': (1,), }", "dtype string"),
        ("{'descr': 'nonsense', 'fortran_order': False, 'shape': (1,), }", "not a dtype"),
        ("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }", "structured dtype refused"),
        ("__import__('os').mkdir('x')", "not a Python literal"),
        ("{'descr': '<i4',\n 'fortran_order': False, 'shape': (1,)", "not a Python literal"),
    ],
)
def test_malformed_header_is_refused(forge_npy: ForgeNpy, header: str, reason: str) -> None:
    path = forge_npy(header, data=bytes(4))

    with pytest.raises(ArtifactError, match=reason) as excinfo:
        load_array(path, **GENEROUS)

    assert_plain_artifact_error(excinfo, path)


@pytest.mark.parametrize("version", [(1, 1), (4, 0), (0, 0)])
def test_unsupported_version_is_refused(write_raw: WriteRaw, version: tuple[int, int]) -> None:
    path = write_raw(b"\x93NUMPY" + bytes(version) + b"\x10\x00" + b" " * 16)

    with pytest.raises(ArtifactError, match=r"unsupported \.npy version") as excinfo:
        check_complete(path)

    assert_plain_artifact_error(excinfo, path)


def test_oversized_header_is_refused_not_waited_for(write_raw: WriteRaw) -> None:
    path = write_raw(b"\x93NUMPY\x02\x00" + (1 << 31).to_bytes(4, "little") + b"{")

    with pytest.raises(ArtifactError, match="header of 2147483648 bytes refused") as excinfo:
        check_complete(path)

    assert_plain_artifact_error(excinfo, path)


def test_v3_header_that_is_not_utf8_is_refused(write_raw: WriteRaw) -> None:
    text = b"{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }\xff\n"
    path = write_raw(b"\x93NUMPY\x03\x00" + len(text).to_bytes(4, "little") + text + bytes(4))

    with pytest.raises(ArtifactError, match="utf8") as excinfo:
        check_complete(path)

    assert_plain_artifact_error(excinfo, path)


def test_forged_header_with_matching_size_loads(forge_npy: ForgeNpy) -> None:
    # A hand-written header is fine as long as it tells the truth: the parser does not rely on np.save quirks.
    data = np.array([1, -2, 3], dtype=">i2").tobytes()
    path = forge_npy("{'descr': '>i2', 'fortran_order': False, 'shape': (3,)}", data=data, version=(2, 0))

    header = check_complete(path)

    assert header == NpyHeader(
        shape=(3,), dtype=np.dtype(">i2"), fortran_order=False, data_offset=path.stat().st_size - 6
    )
    assert load_array(path, **GENEROUS).tolist() == [1, -2, 3]


def test_a_deprecated_dtype_alias_is_refused_without_a_warning(forge_npy: ForgeNpy) -> None:
    # numpy would print a DeprecationWarning to stderr for 'a', a line outside the log (JSON logs included).
    path = forge_npy("{'descr': 'a', 'fortran_order': False, 'shape': (4,), }", data=bytes(4))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")  # as outside the test suite: shown, not raised
        with pytest.raises(ArtifactError, match="is not a dtype") as excinfo:
            check_complete(path)
    assert_plain_artifact_error(excinfo, path)
    assert [str(w.message) for w in shown] == []
