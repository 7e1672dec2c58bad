"""The legend strip: one swatch per listed class, in the class's colour, with its name, in index space."""

from __future__ import annotations

import numpy as np

from segwatch.compose import Composite, IndexSpace
from segwatch.legend import SWATCH, legend_classes, legend_strip, with_legend
from segwatch.normalise import Item

PALETTE = np.array([[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]], dtype=np.uint8)
SPACE = IndexSpace(num_classes=4, ignore_index=255, palette=PALETTE)


def swatches(strip: np.ndarray, class_id: int) -> int:
    """How many SWATCH x SWATCH squares of `class_id` the strip holds."""
    mask = strip == class_id
    count = 0
    for top, left in zip(*np.nonzero(mask), strict=True):
        above = top > 0 and mask[top - 1, left]
        beside = left > 0 and mask[top, left - 1]
        if not above and not beside:
            assert mask[top : top + SWATCH, left : left + SWATCH].all()
            assert mask.sum() % (SWATCH * SWATCH) == 0
            count += 1
    return count


def test_one_swatch_per_listed_class_in_its_colour() -> None:
    strip = legend_strip([0, 2, 3], ["sky", "road", "car", "tree"], SPACE, width=200)
    assert [swatches(strip, c) for c in range(4)] == [1, 0, 1, 1]
    text = strip == SPACE.ignore_slot
    assert text.any()  # names are drawn
    assert set(np.unique(strip)) <= {0, 2, 3, SPACE.ignore_slot, SPACE.pad_slot}
    rgb = with_legend(Composite(np.zeros((5, 200, 3), np.uint8), None), [0, 2, 3], [], SPACE).pixels
    for class_id in (0, 2, 3):
        assert (rgb[5:] == PALETTE[class_id]).all(axis=-1).sum() == SWATCH * SWATCH


def test_entries_wrap_to_the_width() -> None:
    wide = legend_strip(list(range(4)), ["background", "building", "vegetation", "car"], SPACE, width=400)
    narrow = legend_strip(list(range(4)), ["background", "building", "vegetation", "car"], SPACE, width=90)
    assert narrow.shape[0] > wide.shape[0] and narrow.shape[1] == 90
    assert [swatches(narrow, c) for c in range(4)] == [1, 1, 1, 1]


def test_present_lists_classes_of_gt_or_pred_and_ignores_ignore_index() -> None:
    gt = np.array([[0, 255], [0, 0]], dtype=np.uint8)
    pred = np.array([[3, 3], [0, 0]], dtype=np.int64)
    items = [Item(gt, pred, None)]
    assert legend_classes("present", items, 4) == [0, 3]
    assert legend_classes("all", items, 4) == [0, 1, 2, 3]
    assert legend_classes("none", items, 4) == []


def test_a_paletted_composite_stays_paletted_with_its_legend_below() -> None:
    pixels = np.ones((8, 120), dtype=np.uint8)
    composite = with_legend(Composite(pixels, SPACE.full_palette()), [1], [], SPACE)
    assert composite.palette is not None and composite.pixels.dtype == np.uint8
    assert composite.pixels.shape[0] > 8
    np.testing.assert_array_equal(composite.pixels[:8], pixels)
    assert swatches(composite.pixels[8:], 1) == 1
