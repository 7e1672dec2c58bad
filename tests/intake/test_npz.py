"""`.npz` archives: what np.savez writes loads exactly; hostile archives are refused without being unpacked."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from segwatch.caps import Caps
from segwatch.errors import ArtifactError, NotReadyError
from segwatch.intake.files import check_dump_file, load_dump_file
from segwatch.intake.npz import check_archive, load_member

CAPS = {"max_file_bytes": 1 << 20, "max_pixels": 1 << 20}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_members_load_exactly(tmp_path, save):
    gt = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    pred = np.asfortranarray(np.random.default_rng(0).random((2, 5, 3, 4)).astype(np.float32))
    path = tmp_path / "epoch_1.npz"
    save(path, gt=gt, pred=pred)
    assert set(check_archive(path, ["gt", "pred"], **CAPS)) == {"gt", "pred"}
    np.testing.assert_array_equal(load_member(path, "gt", **CAPS), gt)
    caps = Caps(**CAPS)
    np.testing.assert_array_equal(load_dump_file(path, "pred", caps=caps, root=tmp_path), pred)
    assert check_dump_file(path, "pred", caps=caps, root=tmp_path).shape == pred.shape


def test_a_pickled_member_is_refused(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, gt=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ArtifactError, match="pickled data is never loaded"):
        load_member(path, "gt", **CAPS)


def test_a_zip_bomb_is_refused_from_the_directory(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, gt=np.zeros((4096, 4096), dtype=np.uint8))  # 16 MiB unpacked, ~16 KiB packed
    assert path.stat().st_size < 100_000
    with pytest.raises(ArtifactError, match=r"member unpacks to 16777344 bytes .* more than the cap"):
        check_archive(path, ["gt"], **CAPS)
    with pytest.raises(ArtifactError, match="more than the cap"):
        load_member(path, "gt", **CAPS)


def test_a_member_lying_about_its_size_is_not_unpacked_past_the_promise(tmp_path):
    # The directory promises a small member; the deflated stream holds far more. Reading stops at the promise
    # and the CRC check refuses the member.
    payload = io.BytesIO()
    np.save(payload, np.zeros(16, dtype=np.uint8))
    small = payload.getvalue()
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("gt.npy", small + b"\0" * 50_000_000)
    raw = bytearray(path.read_bytes())
    # Patch the uncompressed size in the central directory (and local header) to the small file's length.
    big = (len(small) + 50_000_000).to_bytes(4, "little")
    raw = raw.replace(big, len(small).to_bytes(4, "little"))
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError):
        load_member(path, "gt", **CAPS)


def test_a_truncated_archive_is_still_being_written(tmp_path):
    path = tmp_path / "e.npz"
    np.savez(path, gt=np.zeros((64, 64), dtype=np.uint8), pred=np.ones((64, 64), dtype=np.uint8))
    whole = path.read_bytes()
    for cut in (3, 100, len(whole) // 2, len(whole) - 30):
        path.write_bytes(whole[:cut])
        with pytest.raises(NotReadyError, match="still being written"):
            check_archive(path, ["gt"], **CAPS)
    path.write_bytes(whole)
    check_archive(path, ["gt"], **CAPS)


def test_garbage_and_missing_members_are_corrupt_not_waited_for(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(b"\x93NUMPY not a zip at all")
    with pytest.raises(ArtifactError, match=r"not a \.npz archive") as info:
        check_archive(path, ["gt"], **CAPS)
    assert not isinstance(info.value, NotReadyError)
    np.savez(path, gt=np.zeros(3, dtype=np.uint8))
    with pytest.raises(ArtifactError, match="no member 'pred' in the archive \\(it holds: gt\\)"):
        check_archive(path, ["pred"], **CAPS)
