"""Hostile input, end to end: a corpus of bad dump files, generated here, interleaved with good epochs and fed
to real `segwatch once` and `segwatch run` processes.

Every bad file must give exactly one log line naming it and saying why, its epoch set aside, and every good
epoch around it logged. A file that is merely short is different: it may still be being written, so it is
waited for (`once` reports it as not ready; `run` warns once when it stays short), never set aside.
"""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from segwatch.cli import one_line
from segwatch.output.ledger import read_document

from conftest import blob_labels, read_images

N, H, W = 2, 12, 16
NUM_CLASSES = 5
HOSTILE = "hostile"  # the run that holds the corpus, interleaved with good epochs

# Panels at the array size: every pixel is sampled, so a bad class id anywhere is seen.
CONFIG: dict[str, dict[str, object]] = {
    "compose": {
        "num_classes": NUM_CLASSES,
        "panels": ["image", "gt", "pred"],
        "size": [H, W],
        "resize": "stretch",
        "layout": "grid",
    },
    "limits": {"max_file_bytes": "64MiB", "max_pixels": 1 << 22},
    "watch": {"settle": "100ms", "incomplete_timeout": "2s", "rescan_interval": "2s"},
    "service": {"status_interval": 0},
}


# --- building files ---------------------------------------------------------------------------------------


def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


def forged(
    header: str, data: bytes = b"", version: tuple[int, int] = (1, 0), length: int | None = None
) -> bytes:
    """A `.npy` file with a hand-written header, saying what np.save never would."""
    text = header.encode("latin1") + b"\n"
    width = 2 if version == (1, 0) else 4
    size = len(text) if length is None else length
    return b"\x93NUMPY" + bytes(version) + size.to_bytes(width, "little") + text + data


def header_and_offset(data: bytes) -> tuple[int, int]:
    """(header length, data offset) of a version 1.0 file."""
    length = int.from_bytes(data[8:10], "little")
    return length, 10 + length


class FileMaker:
    """Leaves a file behind when unpickled: proof that nothing in the corpus is ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def good_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "gt": blob_labels(rng, (N, H, W), NUM_CLASSES, cell=4),
        "pred": blob_labels(rng, (N, H, W), NUM_CLASSES, cell=4).astype(np.int64),
        "image": rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8),
    }


def scores(seed: int, dtype: str = "<f4") -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((N, NUM_CLASSES, H, W)).astype(dtype)


# --- the corpus -------------------------------------------------------------------------------------------

# How a case ends: set aside with an ERROR line; waited for (short); refused by the scan with one WARNING
# (a directory or name that is never followed); or logged like any good epoch (odd, but valid).
ASIDE, WAITS, REFUSED, LOGGED = "set aside", "waits", "refused", "logged"


@dataclass(frozen=True)
class Case:
    name: str
    expect: str
    reason: str  # part of the log line that must name the file
    # (epoch directory, scratch directory outside the root, seed) -> the file at fault (None: none).
    write: Callable[[Path, Path, int], Path | None]
    live: bool = True  # whether the live daemon is fed this case too


def with_pred(content: Callable[[Path, Path, int], bytes | None], role: str = "pred") -> Callable[..., Path]:
    """An epoch whose other roles are good and whose `role` file holds `content` (bytes, or made by it)."""

    def write(directory: Path, outside: Path, seed: int) -> Path:
        directory.mkdir(parents=True)
        for name, array in good_arrays(seed).items():
            if name != role:
                (directory / f"{name}.npy").write_bytes(npy_bytes(array))
        target = directory / f"{role}.npy"
        data = content(target, outside, seed)
        if data is not None:
            target.write_bytes(data)
        return target

    return write


def array_case(
    name: str, expect: str, reason: str, make: Callable[[int], np.ndarray], role: str = "pred"
) -> Case:
    return Case(name, expect, reason, with_pred(lambda _t, _o, seed: npy_bytes(make(seed)), role))


def bytes_case(name: str, expect: str, reason: str, data: bytes, role: str = "pred") -> Case:
    return Case(name, expect, reason, with_pred(lambda _t, _o, _s: data, role))


def truncations() -> list[Case]:
    """A good pred cut short in every region: magic, version, header length, header text, data."""
    whole = npy_bytes(good_arrays(0)["pred"])
    length, offset = header_and_offset(whole)
    cuts = {
        "empty": 0,
        "in-magic": 3,
        "after-magic": 6,
        "in-version": 7,
        "in-length": 9,
        "header-start": 10,
        "mid-header": 10 + length // 2,
        "header-end": offset - 1,
        "no-data": offset,
        "mid-data": (offset + len(whole)) // 2,
        "last-byte-missing": len(whole) - 1,
    }
    cases = [
        bytes_case(f"truncated-{where}", WAITS, "still being written", whole[:cut])
        for where, cut in cuts.items()
    ]
    v2 = npy_bytes(good_arrays(0)["pred"], version=(2, 0))
    cases.append(bytes_case("truncated-v2-length", WAITS, "still being written", v2[:10]))
    cases.append(
        bytes_case("truncated-gt", WAITS, "still being written", npy_bytes(good_arrays(0)["gt"])[:90], "gt")
    )
    return cases


def forged_headers(marker: Path) -> list[Case]:
    data = bytes(N * H * W * 8)

    def header(descr: str = "'<i8'", fortran: str = "False", shape: str = f"({N}, {H}, {W})") -> str:
        return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"

    cases = [
        ("huge-shape", "more than the cap", header(shape="(2147483648, 2147483648)")),
        (
            "overflowing-shape",
            "more than the cap",
            header(shape="(4611686018427387904, 4611686018427387904, 8)"),
        ),
        ("negative-dim", "negative dimension", header(shape=f"({N}, -{H}, {W})")),
        ("float-dim", "shape must be a tuple of ints", header(shape=f"({N}, 12.0, {W})")),
        ("bool-dim", "shape must be a tuple of ints", header(shape=f"({N}, True, {W})")),
        ("shape-not-tuple", "shape must be a tuple of ints", header(shape="'big'")),
        ("fortran-not-bool", "fortran_order must be True or False", header(fortran="'yes'")),
        ("non-dict-list", "header must be a dict, got list", "[1, 2, 3]"),
        ("non-dict-int", "header must be a dict, got int", "42"),
        ("missing-key", "header keys must be", "{'descr': '<i8', 'shape': (2, 12, 16)}"),
        ("extra-key", "header keys must be", header()[:-1] + "'evil': 1}"),
        ("not-literal", "not a Python literal", header(shape=f"__import__('os').system('touch {marker}')")),
        ("structured", "structured dtype refused", header(descr="[('a', '<i4'), ('b', '<i4')]")),
        ("object", "pickled data is never loaded", header(descr="'|O'")),
        ("unicode", "dtype <U4 refused", header(descr="'<U4'")),
        ("bytes", "dtype |S4 refused", header(descr="'|S4'")),
        ("complex", "dtype complex128 refused", header(descr="'<c16'")),
        ("datetime", "dtype datetime64[s] refused", header(descr="'<M8[s]'")),
        ("timedelta", "dtype timedelta64[s] refused", header(descr="'<m8[s]'")),
        ("longdouble", "refused", header(descr="'<f16'")),
        ("void", "dtype |V8 refused", header(descr="'|V8'")),
        ("subarray", "header descr must be a dtype string", header(descr="('<i4', (2,))")),
        ("no-dtype", "is not a dtype", header(descr="'not a dtype'")),
        # Found by fuzzing: numpy's own parser of comma-separated type strings raised SyntaxError.
        ("dtype-syntax-error", "is not a dtype", header(descr="'|, 4), }   1u1'")),
        ("dtype-unclosed", "is not a dtype", header(descr="'i4, (2'")),
        ("comma-dtype", "refused", header(descr="'i4, f8'")),
    ]
    out = [bytes_case(f"forged-{name}", ASIDE, reason, forged(text, data)) for name, reason, text in cases]
    out += [
        bytes_case("garbage", ASIDE, "not a .npy file", b"this is not numpy at all\n" * 4),
        bytes_case("bad-version", ASIDE, "unsupported .npy version 9.9", b"\x93NUMPY\x09\x09" + bytes(100)),
        bytes_case(
            "huge-header-length", ASIDE, "bytes refused", forged(header(), version=(2, 0), length=0xFFFF_FFFF)
        ),
        bytes_case("trailing-bytes", ASIDE, "corrupt", npy_bytes(good_arrays(1)["pred"]) + b"extra"),
        bytes_case("v3-not-utf8", ASIDE, "not valid utf8", forged("{'descr': '\xff'}", version=(3, 0))),
    ]
    return out


def pickles(marker_raw: Path, marker_npy: Path) -> list[Case]:
    raw = pickle.dumps(FileMaker(marker_raw))
    in_npy = npy_bytes(np.array([FileMaker(marker_npy)], dtype=object))
    return [
        bytes_case("pickle-raw", ASIDE, "not a .npy file", raw),
        bytes_case("pickle-in-npy", ASIDE, "pickled data is never loaded", in_npy),
    ]


def bad_arrays() -> list[Case]:
    def with_value(role: str, value: int, dtype: str) -> Callable[[int], np.ndarray]:
        def make(seed: int) -> np.ndarray:
            array = good_arrays(seed)[role].astype(dtype)
            array[-1, -1, -1] = value
            return array

        return make

    def nan_scores(dtype: str) -> Callable[[int], np.ndarray]:
        def make(seed: int) -> np.ndarray:
            array = scores(seed, dtype)
            array[1, 2, 3, 4] = np.nan
            return array

        return make

    def nan_probabilities(seed: int) -> np.ndarray:
        array = np.random.default_rng(seed).random((N, H, W)).astype(np.float32)
        array[0, 0, 0] = np.nan
        return array

    def nan_image(seed: int) -> np.ndarray:
        array = np.random.default_rng(seed).random((N, H, W, 3))
        array[0, 5, 5, 1] = np.nan
        return array

    return [
        array_case("zero-size-batch", ASIDE, "holds no elements", lambda s: np.zeros((0, H, W), np.int64)),
        array_case("zero-size-width", ASIDE, "holds no elements", lambda s: np.zeros((N, H, 0), np.int64)),
        array_case("zero-size-gt", ASIDE, "holds no elements", lambda s: np.zeros((N, 0, W), np.uint8), "gt"),
        array_case("one-d", ASIDE, "must have 2 to 4 dimensions", lambda s: np.zeros(H * W, np.int64)),
        array_case(
            "five-d", ASIDE, "must have 2 to 4 dimensions", lambda s: np.zeros((1, N, 1, H, W), np.int64)
        ),
        array_case("scalar", ASIDE, "must have 2 to 4 dimensions", lambda s: np.array(3, np.int64)),
        array_case("nan-scores", ASIDE, "pred scores contain NaN", nan_scores("<f4")),
        array_case("nan-scores-half", ASIDE, "pred scores contain NaN", nan_scores("<f2")),
        array_case("nan-probabilities", ASIDE, "probabilities contain NaN", nan_probabilities),
        array_case("nan-image", ASIDE, "image contains NaN", nan_image, "image"),
        array_case("class-id-above", ASIDE, "class id 9 outside [0, 5)", with_value("pred", 9, "int64")),
        array_case("class-id-negative", ASIDE, "class id -3 outside [0, 5)", with_value("pred", -3, "int8")),
        array_case(
            "class-id-above-gt", ASIDE, "class id 7 outside [0, 5)", with_value("gt", 7, "uint8"), "gt"
        ),
        array_case("shape-mismatch", ASIDE, "shape mismatch", lambda s: np.zeros((N, H, W + 1), np.int64)),
        array_case("batch-mismatch", ASIDE, "shape mismatch", lambda s: np.zeros((N + 1, H, W), np.int64)),
        array_case(
            "integer-scores",
            ASIDE,
            "integer pred must have gt's shape",
            lambda s: np.zeros((N, 3, H, W), np.int64),
        ),
        array_case(
            "float-gt", ASIDE, "gt must hold integer class ids", lambda s: np.zeros((N, H, W), "<f4"), "gt"
        ),
        array_case(
            "half-float-gt", ASIDE, "gt must hold integer", lambda s: np.zeros((N, H, W), "<f2"), "gt"
        ),
        array_case(
            "image-other-size", ASIDE, "vs image", lambda s: np.zeros((N, H + 2, W, 3), np.uint8), "image"
        ),
        array_case(
            "image-four-channels", ASIDE, "vs image", lambda s: np.zeros((N, H, W, 4), np.uint8), "image"
        ),
    ]


def odd_but_valid() -> list[Case]:
    def big_endian_scores(seed: int) -> np.ndarray:
        return scores(seed, ">f4")

    def infinite_scores(seed: int) -> np.ndarray:
        array = scores(seed)
        array[0, 3, :, :] = np.inf  # the class with +inf wins wherever it is
        array[1, :, 0, 0] = -np.inf  # all -inf: a tie, the lowest class id
        return array

    return [
        array_case("fortran-order", LOGGED, "", lambda s: np.asfortranarray(good_arrays(s)["pred"])),
        array_case("big-endian-labels", LOGGED, "", lambda s: good_arrays(s)["pred"].astype(">i2")),
        array_case("big-endian-scores", LOGGED, "", big_endian_scores),
        array_case("inf-scores", LOGGED, "", infinite_scores),
        Case("symlink-inside-root", LOGGED, "", with_pred(link_to_sibling_epoch)),
    ]


def link_to_sibling_epoch(target: Path, outside: Path, seed: int) -> None:
    sibling = target.parent.parent / f"{target.parent.name}-source"
    sibling.mkdir()
    (sibling / "pred.npy").write_bytes(npy_bytes(good_arrays(seed)["pred"]))
    target.symlink_to(Path("..") / sibling.name / "pred.npy")


def not_files() -> list[Case]:
    def directory(target: Path, outside: Path, seed: int) -> None:
        target.mkdir()
        (target / "inside.npy").write_bytes(npy_bytes(good_arrays(seed)["pred"]))

    def fifo(target: Path, outside: Path, seed: int) -> None:
        os.mkfifo(target)

    def outside_absolute(target: Path, outside: Path, seed: int) -> None:
        secret = outside / f"secret-{seed}.npy"
        secret.write_bytes(npy_bytes(good_arrays(seed)["pred"]))
        target.symlink_to(secret)

    def outside_relative(target: Path, outside: Path, seed: int) -> None:
        secret = outside / f"relative-{seed}.npy"
        secret.write_bytes(npy_bytes(good_arrays(seed)["pred"]))
        target.symlink_to(os.path.relpath(secret, target.parent))

    def loop(target: Path, outside: Path, seed: int) -> None:
        target.symlink_to(target.name)

    def two_cycle(target: Path, outside: Path, seed: int) -> None:
        other = target.with_name("other.lnk")
        other.symlink_to(target.name)
        target.symlink_to(other.name)

    def dangling(target: Path, outside: Path, seed: int) -> None:
        target.symlink_to("never-there.npy")

    return [
        Case("directory-named-npy", ASIDE, "not a regular file (a directory)", with_pred(directory)),
        Case("fifo-named-npy", ASIDE, "not a regular file (a FIFO)", with_pred(fifo)),
        Case("symlink-outside", ASIDE, "leads outside the watch root", with_pred(outside_absolute)),
        Case("symlink-outside-relative", ASIDE, "leads outside the watch root", with_pred(outside_relative)),
        # Refused on opening; the live daemon does not see them yet (its readiness check stats through links).
        Case("symlink-loop", ASIDE, "Too many levels of symbolic links", with_pred(loop), live=False),
        Case(
            "symlink-two-cycle", ASIDE, "Too many levels of symbolic links", with_pred(two_cycle), live=False
        ),
        Case("symlink-dangling", ASIDE, "No such file or directory", with_pred(dangling), live=False),
        Case("epoch-dir-symlink-outside", REFUSED, "symlinked directory leads outside", epoch_dir_outside),
    ]


def epoch_dir_outside(directory: Path, outside: Path, seed: int) -> Path:
    real = outside / f"epoch-dir-{seed}"
    real.mkdir()
    for name, array in good_arrays(seed).items():
        (real / f"{name}.npy").write_bytes(npy_bytes(array))
    directory.symlink_to(real, target_is_directory=True)
    return directory


def corpus(markers: list[Path]) -> list[Case]:
    cases = [
        *truncations(),
        *forged_headers(markers[0]),
        *pickles(markers[1], markers[2]),
        *bad_arrays(),
        *odd_but_valid(),
        *not_files(),
    ]
    assert len({case.name for case in cases}) == len(cases)
    return cases


# Runs whose names are hard on paths and logs; each gets good epochs 0 and 2 and a bad epoch 1.
ODD_RUN_NAMES = ["with space", "ünïcödé ☃", "new\nline", "tab\tcr\rend", "line\u2028separator", "emoji 🧪"]


# --- laying out the dump ----------------------------------------------------------------------------------


@dataclass
class Dump:
    root: Path
    outside: Path
    markers: list[Path]
    good: dict[str, list[int]] = field(default_factory=dict)
    cases: dict[tuple[str, int], tuple[Case, Path | None]] = field(default_factory=dict)

    def expect(self, expect: str) -> list[tuple[str, int, Case, Path | None]]:
        return [
            (run, epoch, case, fault)
            for (run, epoch), (case, fault) in self.cases.items()
            if case.expect == expect
        ]


def write_good(root: Path, run: str, epoch: int) -> None:
    directory = root / run / f"epoch_{epoch}"
    directory.mkdir(parents=True)
    for name, array in good_arrays(1000 + epoch).items():
        (directory / f"{name}.npy").write_bytes(npy_bytes(array))


def lay_out(dump: Dump, *, live: bool, between: Callable[[], None] = lambda: None) -> None:
    """Good epochs 0, 2, 4, ... of the hostile run with one case at each odd epoch between them; the odd-named
    runs with a bad epoch between two good ones; a run directory that is a symlink leaving the root, and one
    whose name is not UTF-8."""
    cases = [case for case in corpus(dump.markers) if case.live or not live]
    run = HOSTILE
    dump.good[run] = []
    for index, case in enumerate(cases):
        write_good(dump.root, run, 2 * index)
        dump.good[run].append(2 * index)
        epoch = 2 * index + 1
        fault = case.write(dump.root / run / f"epoch_{epoch}", dump.outside, epoch)
        dump.cases[(run, epoch)] = (case, fault)
        if case.expect == LOGGED:
            dump.good[run].append(epoch)
        between()
    write_good(dump.root, run, 2 * len(cases))
    dump.good[run].append(2 * len(cases))

    bad_class = array_case(
        "class-id-in-odd-run", ASIDE, "class id 9 outside", lambda s: np.full((N, H, W), 9, np.int64)
    )
    for name in ODD_RUN_NAMES:
        write_good(dump.root, name, 0)
        fault = bad_class.write(dump.root / name / "epoch_1", dump.outside, 1)
        dump.cases[(name, 1)] = (bad_class, fault)
        write_good(dump.root, name, 2)
        dump.good[name] = [0, 2]
        between()

    linked = dump.root / "linked-run"
    real = dump.outside / "linked-run"
    write_good(dump.outside, "linked-run", 0)
    linked.symlink_to(real, target_is_directory=True)
    dump.cases[("linked-run", 0)] = (
        Case("run-dir-symlink-outside", REFUSED, "symlinked directory leads outside", lambda *a: None),
        linked,
    )

    undecodable = os.fsdecode(b"bad-\xff\xfe-name")
    write_good(dump.root, undecodable, 0)
    dump.cases[(undecodable, 0)] = (
        Case("run-name-not-utf8", REFUSED, "name is not valid UTF-8", lambda *a: None),
        dump.root / undecodable,
    )


@pytest.fixture
def dump(tmp_path: Path) -> Dump:
    root, outside = tmp_path / "dumps", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    markers = [tmp_path / f"unpickled-{index}" for index in range(3)]
    return Dump(root, outside, markers)


def write_config(path: Path, root: Path, logdir: Path, **overrides: dict[str, object]) -> Path:
    config: dict[str, dict[str, object]] = {key: dict(value) for key, value in CONFIG.items()}
    config["watch"]["root"] = str(root)
    config["tensorboard"] = {"logdir": str(logdir)}
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(config))
    return path


# --- reading what happened --------------------------------------------------------------------------------


def shown(path: Path) -> str:
    """A path as a log line shows it: control characters escaped, undecodable bytes as \\x escapes."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return one_line(text)


def ledger(logdir: Path) -> dict[str, dict[str, object]]:
    return read_document(logdir)["runs"]


def done_epochs(logdir: Path) -> dict[str, set[int]]:
    return {
        run: {e for first, last in record["done"] for e in range(first, last + 1)}  # type: ignore[attr-defined]
        for run, record in ledger(logdir).items()
    }


def set_aside_epochs(logdir: Path) -> dict[str, set[int]]:
    return {run: {int(e) for e in record["set_aside"]} for run, record in ledger(logdir).items()}  # type: ignore[attr-defined]


def lines_naming(log: list[str], path: Path) -> list[str]:
    name = shown(path)
    # A path is named when it is followed by the end of the path (": ", " item", " (", " vs", end).
    return [line for line in log if name + ":" in line or name + " " in line or line.endswith(name)]


def check_outcome(dump: Dump, logdir: Path, log: list[str], *, live: bool) -> None:
    """One line per bad file naming it with its reason; nothing else above INFO; every good epoch logged."""
    problems = []
    done, aside = done_epochs(logdir), set_aside_epochs(logdir)
    for run, epochs in dump.good.items():
        if not set(epochs) <= done.get(run, set()):
            problems.append(f"{run!r}: good epochs {sorted(set(epochs) - done.get(run, set()))} not logged")
    accounted: set[str] = set()
    for run, epoch, case, fault in dump.expect(ASIDE):
        assert fault is not None
        naming = lines_naming(log, fault)
        if len(naming) != 1 or case.reason not in naming[0] or " ERROR " not in naming[0]:
            problems.append(
                f"{case.name}: expected one ERROR line naming {shown(fault)} with {case.reason!r}, got {naming}"
            )
        accounted.update(naming)
        if epoch not in aside.get(run, set()) or epoch in done.get(run, set()):
            problems.append(f"{case.name}: epoch {epoch} of {run!r} not (only) set aside")
    for run, epoch, case, fault in dump.expect(REFUSED):
        assert fault is not None
        naming = [line for line in lines_naming(log, fault) if " WARNING " in line]
        if len(naming) != 1 or case.reason not in naming[0]:
            problems.append(f"{case.name}: expected one WARNING naming {shown(fault)}, got {naming}")
        accounted.update(naming)
        if epoch in done.get(run, set()):
            problems.append(f"{case.name}: epoch {epoch} of {run!r} was logged")
    for run, epoch, case, fault in dump.expect(WAITS):
        assert fault is not None
        naming = lines_naming(log, fault)
        if live:
            expected = [line for line in naming if " WARNING " in line and "still incomplete" in line]
        else:
            expected = [line for line in naming if " INFO " in line and " not ready: " in line]
        if len(expected) != 1 or case.reason not in expected[0] or len(naming) != 1:
            problems.append(
                f"{case.name}: expected one line saying {shown(fault)} is not ready, got {naming}"
            )
        accounted.update(naming)
        if epoch in aside.get(run, set()) or epoch in done.get(run, set()):
            problems.append(f"{case.name}: a short file was set aside or logged")
    loud = [line for line in log if (" WARNING " in line or " ERROR " in line) and line not in accounted]
    problems += [f"unexpected: {line}" for line in loud]
    problems += [f"{line}" for line in log if "Traceback" in line]
    problems += [f"{marker} exists: something was unpickled" for marker in dump.markers if marker.exists()]
    assert not problems, "\n".join(problems)


def snapshot(top: Path, leave_out: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under `top` but `leave_out`: (mode, size, mtime), symlinks as themselves."""
    found = {}
    for directory, subdirectories, files in os.walk(top):
        subdirectories[:] = [name for name in subdirectories if Path(directory, name) != leave_out]
        for name in subdirectories + files:
            status = os.lstat(os.path.join(directory, name))
            found[os.path.join(directory, name)] = (status.st_mode, status.st_size, status.st_mtime_ns)
    return found


def check_images(dump: Dump, logdir: Path) -> None:
    """TensorBoard holds exactly the good epochs of each run (read back with its own reader)."""
    for run, epochs in dump.good.items():
        images = read_images(logdir / run)
        assert sorted(images["segwatch/grid"]) == sorted(epochs), run


# --- segwatch once ----------------------------------------------------------------------------------------


def run_once(config: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segwatch", "once", "--config", str(config)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=110,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def test_once_sets_aside_every_bad_file_with_one_line_and_logs_the_good_ones(
    dump: Dump, tmp_path: Path
) -> None:
    lay_out(dump, live=False)
    config = write_config(tmp_path / "segwatch.yaml", dump.root, tmp_path / "tb")
    before = snapshot(tmp_path, leave_out=tmp_path / "tb")
    first = run_once(config)
    # Nothing outside the logdir was written, created or removed: not in the dump, not beside it.
    assert snapshot(tmp_path, leave_out=tmp_path / "tb") == before
    assert first.returncode == 1, first.stderr
    log = first.stderr.splitlines()
    check_outcome(dump, tmp_path / "tb", log, live=False)
    check_images(dump, tmp_path / "tb")
    aside, waits = len(dump.expect(ASIDE)), len(dump.expect(WAITS))
    logged = sum(map(len, dump.good.values()))
    assert first.stdout.startswith(
        f"{logged} logged, {aside} set aside, 0 already done, 0 skipped (late), {waits} not ready"
    )

    # Set aside stays set aside, silently, until the files change. The short epochs now sit below epochs
    # already logged, so even complete they could not be written (TensorBoard would drop the later steps).
    again = run_once(config)
    assert again.returncode == 0, again.stderr
    assert " ERROR " not in again.stderr
    assert again.stdout.startswith(
        f"0 logged, 0 set aside, {logged + aside} already done, {waits} skipped (late)"
    )


def test_a_short_file_completed_later_is_logged_not_set_aside(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    write_good(root, "r", 0)
    whole = npy_bytes(good_arrays(5)["pred"])
    directory = root / "r" / "epoch_1"
    directory.mkdir()
    for name in ("gt", "image"):
        (directory / f"{name}.npy").write_bytes(npy_bytes(good_arrays(5)[name]))
    (directory / "pred.npy").write_bytes(whole[:100])
    config = write_config(tmp_path / "segwatch.yaml", root, tmp_path / "tb")
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert "1 logged, 0 set aside" in first.stdout and "1 not ready" in first.stdout
    (directory / "pred.npy").write_bytes(whole)
    second = run_once(config)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("1 logged, 0 set aside, 1 already done")
    assert sorted(read_images(tmp_path / "tb" / "r")["segwatch/grid"]) == [0, 1]


# --- unreadable files -------------------------------------------------------------------------------------


def without_root_reads() -> list[str] | None:
    """A command prefix under which a mode-000 file cannot be read: none is needed unless we are root; as root,
    setpriv drops the capabilities that let root read anything (the process stays root otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.skipif(
    without_root_reads() is None,
    reason="running as root without setpriv: root reads files whatever their mode",
)
def test_unreadable_file_waits_is_retried_after_chmod_and_an_unlistable_directory_is_reported(
    tmp_path: Path,
) -> None:
    prefix = without_root_reads()
    assert prefix is not None
    root, logdir = tmp_path / "dumps", tmp_path / "tb"
    for epoch in range(4):
        write_good(root, "r", epoch)
    # The newest readable epoch is the unreadable one: once it is fixed, nothing later stands in its way.
    unreadable = root / "r" / "epoch_2" / "pred.npy"
    unreadable.chmod(0o000)
    unlistable = root / "r" / "epoch_3"
    unlistable.chmod(0o000)
    config = write_config(tmp_path / "segwatch.yaml", root, logdir)
    command = [*prefix, sys.executable, "-m", "segwatch", "once", "--config", str(config)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    finally:
        unlistable.chmod(0o755)
    assert result.returncode == 1, result.stderr
    log = result.stderr.splitlines()
    naming = lines_naming(log, unreadable)
    # A permission can be fixed: the epoch waits (one line), it is not set aside for good.
    assert len(naming) == 1 and " WARNING " in naming[0] and "Permission denied" in naming[0], log
    assert "waiting" in naming[0], log
    listing = lines_naming(log, unlistable)
    assert len(listing) == 1 and " WARNING " in listing[0] and "cannot list" in listing[0], log
    assert done_epochs(logdir) == {"r": {0, 1}}
    assert set_aside_epochs(logdir).get("r", set()) == set()

    unreadable.chmod(0o644)
    again = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    assert again.returncode == 0, again.stderr
    assert done_epochs(logdir) == {"r": {0, 1, 2, 3}}
    assert set_aside_epochs(logdir).get("r", set()) == set()


# --- segwatch run -----------------------------------------------------------------------------------------


class Daemon:
    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "segwatch", "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def lines(self) -> list[str]:
        return self.log_path.read_bytes().decode(errors="replace").splitlines()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            assert self.process.poll() is None, "\n".join(self.lines()[-20:])
            time.sleep(0.1)
        return condition()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def daemon(dump: Dump, tmp_path: Path) -> Iterator[Daemon]:
    config = write_config(tmp_path / "segwatch.yaml", dump.root, tmp_path / "tb")
    running = Daemon(config, tmp_path / "segwatch.log")
    yield running
    running.stop()


@pytest.mark.timeout(180)
def test_live_daemon_fed_the_corpus_keeps_going_and_logs_every_good_epoch(
    dump: Dump, daemon: Daemon, tmp_path: Path
) -> None:
    logdir = tmp_path / "tb"
    assert daemon.wait_for(lambda: any("caught up" in line for line in daemon.lines()))
    lay_out(dump, live=True, between=lambda: time.sleep(0.02))

    def settled() -> bool:
        done, aside = done_epochs(logdir), set_aside_epochs(logdir)
        good = all(set(epochs) <= done.get(run, set()) for run, epochs in dump.good.items())
        bad = all(epoch in aside.get(run, set()) for run, epoch, _, _ in dump.expect(ASIDE))
        short = sum("still incomplete" in line for line in daemon.lines()) >= len(dump.expect(WAITS))
        return good and bad and short

    assert daemon.wait_for(settled, timeout=90), "\n".join(daemon.lines()[-30:])
    # Two more periodic rescans meet every bad file again: nothing is reported twice.
    rescans = 2
    time.sleep(rescans * 2.0 + 1.0)
    assert daemon.process.poll() is None
    assert daemon.stop() == 0
    check_outcome(dump, logdir, daemon.lines(), live=True)
    check_images(dump, logdir)
