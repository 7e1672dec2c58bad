import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from segwatch.render.compose import ComposeOptions, compose_grid
from segwatch.render.indexspace import IndexSpace
from segwatch.render.items import Item
from segwatch.render.palettes import build_palette
from segwatch.render.png import encode_png


def decode(data: bytes) -> np.ndarray:
    import tensorflow as tf

    return tf.io.decode_png(data, channels=3).numpy()


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, checking the signature, lengths and CRCs on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, payload = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + payload), f"bad CRC on {kind!r}"
        found.append((kind, payload))
        at += 12 + length
    assert at == len(data)
    return found


def blobs(rng: np.random.Generator, shape: tuple[int, int], num_classes: int, cell: int = 8) -> np.ndarray:
    """Blob-shaped labels like real masks: the argmax of coarse noise, upsampled by repetition."""
    coarse = rng.standard_normal((num_classes, -(-shape[0] // cell), -(-shape[1] // cell)))
    labels = coarse.argmax(axis=0).repeat(cell, axis=0).repeat(cell, axis=1)
    return np.ascontiguousarray(labels[: shape[0], : shape[1]]).astype(np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (37, 53), (64, 300)])
def test_paletted_png_decodes_to_palette_colours(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    palette = build_palette("cityscapes", 24)
    indices = blobs(rng, shape, 24, cell=5)
    np.testing.assert_array_equal(decode(encode_png(indices, palette)), palette[indices])


def test_paletted_png_has_colour_type_3_and_exactly_k_palette_entries() -> None:
    palette = build_palette("voc", 7)
    indices = np.arange(7 * 9, dtype=np.uint8).reshape(9, 7) % 7
    found = chunks(encode_png(indices, palette))
    assert [kind for kind, _ in found] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", found[0][1])
    assert (width, height, depth, colour_type, interlace) == (7, 9, 8, 3, 0)
    assert found[1][1] == palette.tobytes()
    assert len(found[1][1]) == 7 * 3


def test_paletted_rows_after_the_first_are_filtered_up() -> None:
    indices = blobs(np.random.default_rng(4), (20, 30), 5)
    found = dict(chunks(encode_png(indices, build_palette("voc", 5))))
    raw = np.frombuffer(zlib.decompress(found[b"IDAT"]), dtype=np.uint8).reshape(20, 31)
    assert raw[0, 0] == 0 and (raw[1:, 0] == 2).all()
    np.testing.assert_array_equal(raw[0, 1:], indices[0])
    np.testing.assert_array_equal(raw[1:, 1:], (indices[1:] - indices[:-1]).astype(np.uint8))
    # Undoing the filter gives the indices back: what any decoder does.
    np.testing.assert_array_equal(np.cumsum(raw[:, 1:], axis=0, dtype=np.uint8), indices)


def test_up_filter_makes_label_maps_smaller() -> None:
    indices = blobs(np.random.default_rng(9), (512, 512), 21)
    palette = build_palette("voc", 21)
    compressor = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_RLE)
    rows = np.hstack([np.zeros((512, 1), np.uint8), indices]).tobytes()
    unfiltered = compressor.compress(rows) + compressor.flush()
    assert len(encode_png(indices, palette)) < 0.9 * len(unfiltered)


def test_rgb_png_decodes_to_the_same_pixels() -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (33, 17, 3), dtype=np.uint8)
    data = encode_png(rgb)
    assert [kind for kind, _ in chunks(data)] == [b"IHDR", b"IDAT", b"IEND"]
    assert chunks(data)[0][1][9] == 2  # colour type: truecolour
    np.testing.assert_array_equal(decode(data), rgb)


def test_a_composite_round_trips_through_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    gt = blobs(rng, (40, 50), 19)
    gt[:5] = 255
    np.save(tmp_path / "gt.npy", gt)
    np.save(tmp_path / "pred.npy", blobs(rng, (40, 50), 19))
    item = Item(
        np.load(tmp_path / "gt.npy", mmap_mode="r"), np.load(tmp_path / "pred.npy", mmap_mode="r"), None
    )
    space = IndexSpace(19, 255, build_palette("cityscapes", 19))
    composite = compose_grid(
        [item, item, item], space, ComposeOptions((32, 32), "letterbox", ("gt", "pred"), 2)
    )
    assert composite.palette is not None
    decoded = decode(encode_png(composite.pixels, composite.palette))
    np.testing.assert_array_equal(decoded, space.full_palette()[composite.pixels])


def test_label_maps_compress_well_as_indices_and_as_rgb() -> None:
    indices = blobs(np.random.default_rng(7), (256, 1024), 19, cell=16)
    palette = build_palette("cityscapes", 19)
    # Raw sizes are 256 KiB (indices) and 768 KiB (RGB); a run-blind encoder leaves RGB near its raw size.
    assert len(encode_png(indices, palette)) < indices.nbytes // 10
    assert len(encode_png(palette[indices])) < indices.nbytes // 5


@pytest.mark.parametrize(
    ("pixels", "palette", "message"),
    [
        (np.zeros((2, 2), np.uint8), None, "need a \\(K, 3\\) palette"),
        (
            np.full((2, 2), 4, np.uint8),
            np.zeros((4, 3), np.uint8),
            "pixel index 4 has no entry in a 4-colour",
        ),
        (np.zeros((2, 2), np.int64), np.zeros((4, 3), np.uint8), "pixels must be uint8, got int64"),
        (np.zeros((2, 2), np.uint8), np.zeros((257, 3), np.uint8), "1 to 256 entries, got 257"),
        (np.zeros((2, 2), np.uint8), np.zeros((4, 3), np.int32), "palette must be \\(K, 3\\) uint8"),
        (np.zeros((2, 2, 3), np.uint8), np.zeros((4, 3), np.uint8), "RGB and take no palette"),
        (np.zeros((2, 2, 4), np.uint8), None, "got shape \\(2, 2, 4\\)"),
        (np.zeros((0, 2, 3), np.uint8), None, "sides must be in"),
    ],
)
def test_bad_input_is_refused(pixels: np.ndarray, palette: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_png(pixels, palette)
