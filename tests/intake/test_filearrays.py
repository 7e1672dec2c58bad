"""Reads that cannot fault: arrays read by offset from real files, forged headers refused before arithmetic,
numbers past int64 in paths refused with one line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from segwatch.errors import ArtifactError, NotReadyError
from segwatch.intake.filearrays import FileArray, paired_chunks, sample_rows
from segwatch.intake.layout import DumpLayout, group_artifacts
from segwatch.intake.npy import check_complete, load_array, open_array
from segwatch.intake.reads import ReadSession
from segwatch.service.processor import artifact_fingerprint

CAPS = {"max_file_bytes": 1 << 40, "max_pixels": 1 << 40}


def forge(path: Path, shape: str) -> Path:
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    return path


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ("(" + "1000000000, " * 500 + ")", "500 dimensions"),
        ("(" + "1, " * 70 + ")", "70 dimensions"),
        ("(0, 1000000000, 1000000000, 1000000000)", "holds no elements"),
        ("(" + "9" * 30 + ", 2)", "above 2**63 - 1"),
        ("(" + "4611686018427387904, " * 32 + ")", "more than the cap"),
    ],
)
def test_forged_shapes_are_refused_in_one_short_line(tmp_path: Path, shape: str, reason: str) -> None:
    path = forge(tmp_path / "pred.npy", shape)
    for attempt in (lambda: check_complete(path, **CAPS), lambda: load_array(path, **CAPS)):
        with pytest.raises(ArtifactError) as excinfo:
            attempt()
        message = str(excinfo.value)
        assert not isinstance(excinfo.value, NotReadyError), message
        assert reason in message and message.startswith(f"{path}: "), message
        assert "\n" not in message and len(message) < len(str(path)) + 200, message


def test_epoch_and_step_numbers_past_int64_are_refused_once_per_directory(caplog) -> None:
    layout = DumpLayout()
    huge, endless = "9223372036854775808", "9" * 5000  # 5,000 digits: int() of it would raise
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # a rescan says nothing new
            for role in ("gt", "pred"):
                assert layout.keys(f"r/epoch_{huge}/{role}.npy") == []
                assert layout.keys(f"r/epoch_{endless}/{role}.npy") == []
    assert layout.keys("r/epoch_9223372036854775807/gt.npy")[0].epoch == 2**63 - 1
    lines = caplog.text.splitlines()
    assert len([line for line in lines if f"epoch_{huge}:" in line]) == 1, lines
    assert len([line for line in lines if "5000 digits" in line]) == 1, lines
    assert max(map(len, lines)) < 500


def saved(tmp_path: Path, array: np.ndarray, name: str = "a.npy") -> Path:
    path = tmp_path / name
    np.save(path, array)
    return path


@pytest.mark.parametrize("order", ["C", "F"])
def test_views_read_the_same_values_as_numpy(tmp_path: Path, order: str) -> None:
    array = np.asfortranarray(np.arange(4 * 6 * 10, dtype="<i4").reshape(4, 6, 10))
    if order == "C":
        array = np.ascontiguousarray(array)
    with ReadSession() as reads:
        stored = open_array(saved(tmp_path, array), reads, **CAPS)
        for key in [
            (),
            (1,),
            (slice(None), slice(1, 5)),
            (2, slice(None, None, 3)),
            (slice(None, None, 2), 4),
        ]:
            np.testing.assert_array_equal(np.asarray(stored[key]), array[key])
        np.testing.assert_array_equal(np.asarray(stored.transpose((2, 0, 1))), array.transpose((2, 0, 1)))
        np.testing.assert_array_equal(stored.take_first(np.array([3, 0, 3])), array[[3, 0, 3]])
        np.testing.assert_array_equal(sample_rows(stored[1], np.array([0, 5, 2])), array[1][[0, 5, 2]])
        np.testing.assert_array_equal(sample_rows(stored[1], slice(1, 6, 2)), array[1][1:6:2])
        # Each chunk is valid until the next one is asked for (one buffer, reused): copied here.
        chunks = [(g.copy(), p.copy()) for g, p in paired_chunks(stored, stored.view("<u4"), 7)]
        np.testing.assert_array_equal(np.concatenate([g for g, _ in chunks]), array.reshape(-1))
        np.testing.assert_array_equal(np.concatenate([p for _, p in chunks]), array.reshape(-1).view("<u4"))
        assert bool((stored[0] == array[0]).all())
        reads.check_unchanged()


def rchar() -> int:
    """Bytes this process has read with read(2)-style calls (pread included), from /proc/self/io."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/self/io (Linux)")
def test_nearest_sampling_reads_only_the_rows_it_keeps_and_maps_nothing(tmp_path: Path) -> None:
    labels = np.random.default_rng(0).integers(0, 19, size=(4096, 4096), dtype=np.uint8)
    path = saved(tmp_path, labels)  # 16 MiB
    with ReadSession() as reads:
        stored = open_array(path, reads, **CAPS)
        before = rchar()
        sampled = sample_rows(stored, slice(8, 4096, 16))
        read = rchar() - before
        with open("/proc/self/maps") as maps:
            assert str(path) not in maps.read()  # read by offset, never memory-mapped
    np.testing.assert_array_equal(sampled, labels[8::16])
    assert read <= 256 * 4096 + 65536, read  # the 256 kept rows, not the 16 MiB map


def test_a_file_truncated_under_the_reader_is_a_short_read_not_a_signal(tmp_path: Path) -> None:
    path = saved(tmp_path, np.arange(1 << 20, dtype=np.int64))
    with ReadSession() as reads:
        stored = open_array(path, reads, **CAPS)
        np.save(path, np.arange(10, dtype=np.int64))  # a producer's np.save over it: same inode, truncated
        with pytest.raises(NotReadyError, match="changed while reading"):
            np.asarray(stored[(1 << 20) - 100 :])


def test_a_same_size_rewrite_during_the_read_is_caught(tmp_path: Path) -> None:
    path = saved(tmp_path, np.zeros(1000, dtype=np.int64))
    with ReadSession() as reads:
        stored = open_array(path, reads, **CAPS)
        first = np.asarray(stored)
        with open(path, "r+b") as handle:
            handle.seek(200)
            handle.write(b"\1" * 8)
        assert isinstance(stored, FileArray) and first.sum() == 0
        with pytest.raises(NotReadyError, match="changed while reading"):
            reads.check_unchanged()


def test_the_set_aside_fingerprint_changes_with_the_mode(tmp_path: Path) -> None:
    for role in ("gt", "pred"):
        saved(tmp_path, np.zeros((4, 4), np.uint8), f"{role}.npy")
    keys = [
        (DumpLayout().keys(f"r/epoch_1/{role}.npy")[0], str(tmp_path / f"{role}.npy"))
        for role in ("gt", "pred")
    ]
    (artifact,), _ = group_artifacts(keys, ("gt", "pred"))
    before = artifact_fingerprint(artifact)
    os.chmod(tmp_path / "pred.npy", 0o000)
    unreadable = artifact_fingerprint(artifact)
    os.chmod(tmp_path / "pred.npy", 0o644)
    assert len({before, unreadable, artifact_fingerprint(artifact)}) == 3
