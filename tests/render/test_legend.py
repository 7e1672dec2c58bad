"""The legend strip and the column headers, decoded to pixels: bordered swatches in each class's colour,
names in the reserved ink levels, everything on the reserved backdrop, paletted composites kept paletted."""

from __future__ import annotations

import numpy as np
import pytest

from segwatch.render.headers import HEADER_NAMES, header_height, header_strip, with_headers
from segwatch.render.indexspace import Composite, IndexSpace
from segwatch.render.items import Item
from segwatch.render.legend import legend_classes, legend_layout, legend_strip, with_legend
from segwatch.render.lettering import CARD_WIDTH, SCREEN_TEXT_PX, TIME_SERIES_HEIGHT, text_size_for
from segwatch.render.palettes import build_palette
from segwatch.render.png import encode_png

from conftest import decode_png

PALETTE = np.array([[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]], dtype=np.uint8)
SPACE = IndexSpace(num_classes=4, ignore_index=255, palette=PALETTE)


def squares(rgb: np.ndarray, colour: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of every solid rectangle of `colour`, found by its top-left corners."""
    mask = (rgb == colour).all(axis=-1)
    found = []
    for top, left in zip(*np.nonzero(mask), strict=True):
        if (top == 0 or not mask[top - 1, left]) and (left == 0 or not mask[top, left - 1]):
            height = int(np.argmin(np.append(mask[top:, left], False)))
            width = int(np.argmin(np.append(mask[top, left:], False)))
            assert mask[top : top + height, left : left + width].all()
            found.append((int(top), int(left), height, width))
    return found


def decoded(strip: np.ndarray, space: IndexSpace) -> np.ndarray:
    """The strip as a PNG decoder sees it: written paletted, read back to RGB."""
    return decode_png(encode_png(strip, space.full_palette()))


def test_each_listed_class_gets_one_bordered_swatch_in_its_colour() -> None:
    strip = legend_strip([0, 2, 3], ["sky", "road", "car", "tree"], SPACE, width=400)
    rgb = decoded(strip, SPACE)
    full = SPACE.full_palette()
    ink, backdrop = full[SPACE.ink_slot], full[SPACE.backdrop_slot]
    layout = legend_layout([0, 2, 3], ["sky", "road", "car", "tree"], 400)
    inner = layout.swatch - 2 * layout.border
    for class_id in (0, 2, 3):
        (top, left, height, width) = squares(rgb, PALETTE[class_id])[0]
        assert len(squares(rgb, PALETTE[class_id])) == 1 and (height, width) == (inner, inner)
        b = layout.border
        ring = rgb[top - b : top + height + b, left - b : left + width + b].copy()
        ring[b:-b, b:-b] = ink
        assert (ring == ink).all(), "each swatch has a border in the ink colour"
    assert not squares(rgb, PALETTE[1])  # class 1 is not listed
    # The rest is the backdrop and the text's ink levels, nothing else.
    colours = {tuple(c) for c in rgb.reshape(-1, 3).tolist()}
    text = {tuple(full[slot]) for slot in SPACE.text_slots()[1:]}
    assert colours == {tuple(PALETTE[c]) for c in (0, 2, 3)} | {tuple(backdrop)} | text
    assert (rgb == ink).all(
        axis=-1
    ).sum() > 4 * layout.swatch * layout.border  # names drawn, not only borders


def test_the_backdrop_stands_apart_from_dark_and_grey_classes() -> None:
    # VOC background (black), navy, Cityscapes building (70, 70, 70): swatches must not vanish into it.
    for name, count in (("voc", 21), ("cityscapes", 19)):
        space = IndexSpace(num_classes=count, ignore_index=255, palette=build_palette(name, count))
        rgb = decoded(legend_strip(list(range(count)), [], space, width=900), space)
        for class_id in range(count):
            assert squares(rgb, space.palette[class_id]), (name, class_id)


def test_entries_wrap_to_the_width() -> None:
    names = ["background", "building", "vegetation", "car"]
    rows = {
        w: max(r for r, *_ in legend_layout(list(range(4)), names, w, size=20).placed) for w in (200, 1200)
    }
    assert rows[200] > rows[1200]
    narrow = legend_strip(list(range(4)), names, SPACE, width=200)
    assert narrow.shape[1] == 200
    rgb = decoded(narrow, SPACE)
    assert all(len(squares(rgb, PALETTE[c])) == 1 for c in range(4))


@pytest.mark.parametrize("width", [200, CARD_WIDTH, 700, 1536, 3000])
@pytest.mark.parametrize("height", [100, 600, 1600])
def test_text_is_sized_for_the_cards_the_picture_is_shown_in(width: int, height: int) -> None:
    size = text_size_for(width, height)
    # Font size in on-screen px once TensorBoard scales the picture into the Images tab's 350 px wide card
    # or the Time Series tab's 215 px tall one: never below SCREEN_TEXT_PX.
    shown = size * min(1.0, CARD_WIDTH / width, TIME_SERIES_HEIGHT / height)
    assert SCREEN_TEXT_PX <= shown < SCREEN_TEXT_PX + 1 or size == 11, (width, height, size)
    assert legend_layout([0, 1], ["road", "sky"], width, size).size == size


def test_present_lists_classes_of_gt_or_pred_and_ignores_ignore_index() -> None:
    gt = np.array([[0, 255], [0, 0]], dtype=np.uint8)
    pred = np.array([[3, 3], [0, 0]], dtype=np.int64)
    items = [Item(gt, pred, None)]
    assert legend_classes("present", items, 4) == [0, 3]
    assert legend_classes("all", items, 4) == [0, 1, 2, 3]
    assert legend_classes("none", items, 4) == []


def test_a_paletted_composite_stays_paletted_with_headers_and_legend() -> None:
    pixels = np.ones((8, 120), dtype=np.uint8)
    composite = with_legend(Composite(pixels, SPACE.full_palette()), [1], [], SPACE)
    composite = with_headers(composite, ["gt"], [0], 120, SPACE)
    assert composite.palette is not None and composite.pixels.dtype == np.uint8
    top = header_height(["gt"], 120, 120)
    np.testing.assert_array_equal(composite.pixels[top : top + 8], pixels)
    assert len(squares(decoded(composite.pixels[top + 8 :], SPACE), PALETTE[1])) == 1


def test_headers_name_each_panel_centred_over_it() -> None:
    panels, width, panel_w = ["gt", "pred"], 600, 148
    lefts = [0, 150, 302, 452]  # two items of two panels
    strip = header_strip(panels, lefts, panel_w, width, SPACE)
    rgb = decoded(strip, SPACE)
    full = SPACE.full_palette()
    inked = (rgb != full[SPACE.backdrop_slot]).any(axis=-1)
    assert {tuple(c) for c in rgb[inked].tolist()} <= {tuple(full[s]) for s in SPACE.text_slots()[1:]}
    for left in lefts:
        columns = np.flatnonzero(inked[:, left : left + panel_w].any(axis=0))
        assert columns.size, f"no name over the panel at {left}"
        # Centred: as much room left of the text as right of it, within a pixel or two.
        assert abs(columns[0] - (panel_w - 1 - columns[-1])) <= 3
    # The two names differ: ground truth is wider than prediction.
    gt_span = np.flatnonzero(inked[:, :panel_w].any(axis=0))
    pred_span = np.flatnonzero(inked[:, 150 : 150 + panel_w].any(axis=0))
    assert gt_span[-1] - gt_span[0] > pred_span[-1] - pred_span[0]
    assert HEADER_NAMES["gt"] == "ground truth"


def test_headers_shrink_or_shorten_to_fit_narrow_panels() -> None:
    strip = header_strip(["image", "gt", "pred", "overlay", "error"], [0, 40, 80, 120, 160], 38, 1536, SPACE)
    inked = (decoded(strip, SPACE) != SPACE.full_palette()[SPACE.backdrop_slot]).any(axis=-1)
    for left in (0, 40, 80, 120, 160):
        assert not inked[:, left + 38 : left + 40].any(), "a name spills into the gutter"
