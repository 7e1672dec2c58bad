from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segwatch.errors import ArtifactError
from segwatch.render.compose import (
    ComposeOptions,
    check_panels,
    compose_grid,
    compose_pair,
    content_box,
    resize_image_bilinear,
    resize_labels_nearest,
)
from segwatch.render.indexspace import RESERVED_SLOTS, IndexSpace
from segwatch.render.items import Item
from segwatch.render.palettes import (
    BUILTIN_PALETTES,
    MIN_RESERVED_DELTA_E,
    RESERVED_ROLES,
    build_palette,
    delta_e,
)

MakeItem = Callable[..., Item]
Save = Callable[[np.ndarray], np.ndarray]


@pytest.fixture
def saved(tmp_path: Path) -> Save:
    """Write an array to a real .npy file and map it back read-only, as the loader hands it over."""
    counter = iter(range(1_000_000))

    def save(array: np.ndarray) -> np.ndarray:
        path = tmp_path / f"array_{next(counter)}.npy"
        np.save(path, array)
        return np.load(path, mmap_mode="r")

    return save


@pytest.fixture
def make_item(saved: Save) -> MakeItem:
    def make(gt: np.ndarray, pred: np.ndarray | None = None, image: np.ndarray | None = None) -> Item:
        return Item(
            gt=saved(gt),
            pred=saved(gt if pred is None else pred),
            image=None if image is None else saved(image),
        )

    return make


def space_for(num_classes: int, ignore_index: int | None = 255, palette: str = "voc") -> IndexSpace:
    return IndexSpace(num_classes, ignore_index, build_palette(palette, num_classes))


def options(
    size: tuple[int, int] = (8, 10),
    resize: str = "stretch",
    panels: tuple[str, ...] = ("gt", "pred"),
    columns: int = 4,
    gutter: int = 2,
    overlay_alpha: float = 0.4,
) -> ComposeOptions:
    return ComposeOptions(size, resize, panels, columns, gutter, overlay_alpha)  # type: ignore[arg-type]


def stripes(shape: tuple[int, int], values: list[int]) -> np.ndarray:
    """Diagonal stripes cycling through `values`: every resize crosses many class boundaries."""
    rows, cols = np.indices(shape)
    return np.array(values, dtype=np.int64)[(rows + cols) // 3 % len(values)]


# --- resizing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(7, 13), (50, 90), (3, 3), (101, 37)])
def test_nearest_resize_never_invents_a_class_while_bilinear_would(
    saved: Save, size: tuple[int, int]
) -> None:
    labels = saved(stripes((40, 60), [0, 10, 200]).astype(np.uint8))
    resized = resize_labels_nearest(labels, size)
    assert resized.shape == size
    assert set(np.unique(resized)) <= {0, 10, 200}

    blended = resize_image_bilinear(np.repeat(np.asarray(labels)[:, :, None], 3, axis=2), size)
    assert set(np.unique(blended)) - {0, 10, 200}, "bilinear interpolation should have blended class ids"


def test_nearest_resize_samples_pixel_centres() -> None:
    labels = np.arange(16).reshape(4, 4)
    # centres of 2 output pixels over 4 inputs fall in source pixels 1 and 3
    np.testing.assert_array_equal(resize_labels_nearest(labels, (2, 2)), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(resize_labels_nearest(labels, (4, 4)), labels)
    np.testing.assert_array_equal(resize_labels_nearest(labels[:1, :2], (2, 4)), [[0, 0, 1, 1], [0, 0, 1, 1]])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(1, 60),
    st.integers(1, 60),
    st.lists(st.integers(0, 252), min_size=1, max_size=5),
)
def test_nearest_resize_keeps_only_input_values(
    h: int, w: int, out_h: int, out_w: int, values: list[int]
) -> None:
    labels = stripes((h, w), values)
    resized = resize_labels_nearest(labels, (out_h, out_w))
    assert resized.shape == (out_h, out_w)
    assert set(np.unique(resized)) <= set(np.unique(labels))


def test_bilinear_uses_half_pixel_centres_and_clamps_edges() -> None:
    ramp = np.array([[0, 100]], dtype=np.uint8)[:, :, None].repeat(3, axis=2)
    np.testing.assert_array_equal(resize_image_bilinear(ramp, (1, 4))[0, :, 0], [0, 25, 75, 100])


def test_bilinear_at_the_same_size_is_the_identity(saved: Save) -> None:
    image = saved(np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8))
    resized = resize_image_bilinear(image, (9, 11))
    assert resized.dtype == np.uint8
    np.testing.assert_array_equal(resized, image)


# --- geometry ---------------------------------------------------------------------------------------------


def test_letterbox_geometry_of_a_wide_map() -> None:
    assert content_box((100, 200), (64, 64), "letterbox") == (16, 0, 32, 64)
    assert content_box((200, 100), (64, 64), "letterbox") == (0, 16, 64, 32)
    assert content_box((100, 200), (64, 64), "stretch") == (0, 0, 64, 64)
    assert content_box((1, 10_000), (64, 64), "letterbox") == (31, 0, 1, 64)


def test_letterboxed_panel_has_pad_rows_above_and_below(make_item: MakeItem) -> None:
    gt = stripes((100, 200), [1, 2, 3])
    space = space_for(5)
    composite = compose_pair(make_item(gt), space, options(size=(64, 64), resize="letterbox", panels=("gt",)))
    pixels = composite.pixels
    assert pixels.shape == (64, 64)
    assert (pixels[:16] == space.pad_slot).all()
    assert (pixels[48:] == space.pad_slot).all()
    np.testing.assert_array_equal(pixels[16:48], resize_labels_nearest(gt, (32, 64)))
    assert not (pixels[16:48] == space.pad_slot).any()


def test_stretch_fills_the_panel(make_item: MakeItem) -> None:
    gt = stripes((100, 200), [1, 2, 3])
    composite = compose_pair(make_item(gt), space_for(5), options(size=(64, 64), panels=("gt",)))
    np.testing.assert_array_equal(composite.pixels, resize_labels_nearest(gt, (64, 64)))


# --- pair and grid tiling ---------------------------------------------------------------------------------


def test_pair_puts_panels_side_by_side_in_the_requested_order(make_item: MakeItem) -> None:
    gt = np.full((8, 10), 1)
    pred = np.full((8, 10), 2)
    space = space_for(5)
    composite = compose_pair(make_item(gt, pred), space, options(panels=("pred", "gt"), gutter=3))
    assert composite.pixels.shape == (8, 23)
    assert (composite.pixels[:, :10] == 2).all()
    assert (composite.pixels[:, 10:13] == space.gutter_slot).all()
    assert (composite.pixels[:, 13:] == 1).all()


def test_grid_puts_each_item_exactly_where_expected(make_item: MakeItem) -> None:
    panel_h, panel_w, gap, columns = 8, 10, 2, 2
    rows, cols = np.indices((panel_h, panel_w))
    gts = [(i * 40 + rows * panel_w + cols) % 245 for i in range(5)]
    preds = [(g + 3) % 245 for g in gts]
    items = [make_item(g, p) for g, p in zip(gts, preds, strict=True)]
    space = space_for(245, ignore_index=None)
    composite = compose_grid(items, space, options((panel_h, panel_w), columns=columns, gutter=gap))

    cell_w = 2 * panel_w + gap
    pixels = composite.pixels
    assert pixels.shape == (3 * panel_h + 2 * gap, columns * cell_w + gap)
    painted = np.zeros(pixels.shape, dtype=bool)
    for i in range(5):
        top, left = (i // columns) * (panel_h + gap), (i % columns) * (cell_w + gap)
        gt_panel = (slice(top, top + panel_h), slice(left, left + panel_w))
        pred_panel = (slice(top, top + panel_h), slice(left + panel_w + gap, left + cell_w))
        np.testing.assert_array_equal(pixels[gt_panel], gts[i], err_msg=f"gt of item {i}")
        np.testing.assert_array_equal(pixels[pred_panel], preds[i], err_msg=f"pred of item {i}")
        painted[gt_panel] = painted[pred_panel] = True
    # Everything else, the empty sixth cell included, is gutter.
    assert (pixels[~painted] == space.gutter_slot).all()
    assert (pixels[2 * (panel_h + gap) :, cell_w + gap :] == space.gutter_slot).all()


def test_grid_is_no_wider_than_its_items(make_item: MakeItem) -> None:
    items = [make_item(np.full((8, 10), i)) for i in range(2)]
    composite = compose_grid(items, space_for(5), options(columns=8))
    assert composite.pixels.shape == (8, 2 * 22 + 2)


def test_items_of_different_shapes_are_fitted_one_by_one(make_item: MakeItem) -> None:
    wide, tall = make_item(np.full((10, 40), 1)), make_item(np.full((40, 10), 2))
    space = space_for(5)
    composite = compose_grid([wide, tall], space, options((16, 16), "letterbox", ("gt",), columns=2))
    pixels = composite.pixels
    assert (pixels[6:10, :16] == 1).all() and (pixels[:6, :16] == space.pad_slot).all()
    assert (pixels[:, 18 + 6 : 18 + 10] == 2).all() and (pixels[:, 18 : 18 + 6] == space.pad_slot).all()


def test_compose_grid_needs_an_item() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        compose_grid([], space_for(5), options())


# --- class ids, ignore, validation ------------------------------------------------------------------------


def test_out_of_range_class_id_is_refused_with_its_message(make_item: MakeItem) -> None:
    gt = np.full((8, 10), 1)
    gt[3, 4] = 7
    with pytest.raises(ArtifactError) as caught:
        compose_pair(make_item(gt), space_for(5), options(), source="run/epoch_3")
    assert str(caught.value) == "run/epoch_3: class id 7 outside [0, 5) and not ignore_index 255"


def test_negative_class_id_is_refused_when_there_is_no_ignore_index(make_item: MakeItem) -> None:
    pred = np.full((8, 10), 1, dtype=np.int32)
    pred[0, 0] = -1
    with pytest.raises(ArtifactError, match=r"^p: class id -1 outside \[0, 5\) and not ignore_index None$"):
        compose_pair(make_item(np.ones((8, 10), np.int32), pred), space_for(5, None), options(), source="p")


@pytest.mark.parametrize(("dtype", "ignore"), [(np.uint8, 255), (np.uint16, 65535), (np.int64, -1)])
def test_ignore_pixels_get_the_ignore_colour(make_item: MakeItem, dtype: type, ignore: int) -> None:
    gt: np.ndarray = np.zeros((8, 10), dtype=dtype)
    gt[:, 5:] = ignore
    space = space_for(21, ignore, "voc")
    composite = compose_pair(make_item(gt), space, options(panels=("gt",)))
    assert composite.palette is not None
    np.testing.assert_array_equal(composite.pixels[:, 5:], space.ignore_slot)
    np.testing.assert_array_equal(composite.pixels[:, :5], 0)
    assert composite.palette[space.ignore_slot].tolist() == [255, 255, 255]
    assert composite.palette[composite.pixels[0, 0]].tolist() == [0, 0, 0]  # VOC background


def test_255_can_be_a_real_class_and_then_the_composite_is_rgb(make_item: MakeItem) -> None:
    gt = np.array([[0, 255], [128, 255]], dtype=np.uint8)
    space = space_for(256, ignore_index=None)
    assert not space.fits_8bit
    composite = compose_pair(make_item(gt), space, options(size=(2, 2), panels=("gt",)))
    assert composite.palette is None
    np.testing.assert_array_equal(composite.pixels, space.palette[gt])


def test_more_than_253_classes_are_composed_in_rgb(make_item: MakeItem) -> None:
    gt = np.array([[0, 253], [-1, 3]], dtype=np.int64)
    space = space_for(254, ignore_index=-1)
    composite = compose_pair(make_item(gt), space, options(size=(2, 2), panels=("gt",)))
    assert composite.pixels.shape == (2, 2, 3)
    full = space.full_palette()
    assert composite.pixels[1, 0].tolist() == full[space.ignore_slot].tolist()
    assert composite.pixels[0, 1].tolist() == full[253].tolist()


def test_label_maps_must_be_integer(make_item: MakeItem) -> None:
    with pytest.raises(ArtifactError, match=r"f\.npy: gt must have an integer dtype, got float32"):
        compose_pair(make_item(np.zeros((4, 4), np.float32)), space_for(5), options(), source="f.npy")


def test_mismatched_gt_and_pred_shapes_are_named(make_item: MakeItem) -> None:
    item = make_item(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ArtifactError, match=r"gt shape \(4, 4\) and pred shape \(4, 5\) differ"):
        compose_pair(item, space_for(5), options())


# --- image panels and RGB ---------------------------------------------------------------------------------


def test_image_panel_makes_the_composite_rgb(make_item: MakeItem) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    gt, pred = stripes((8, 10), [0, 1, 2]), stripes((8, 10), [2, 3])
    space = space_for(5, palette="cityscapes")
    composite = compose_pair(make_item(gt, pred, image), space, options(panels=("image", "gt", "pred")))
    assert composite.palette is None
    assert composite.pixels.shape == (8, 34, 3)
    np.testing.assert_array_equal(composite.pixels[:, :10], image)
    np.testing.assert_array_equal(composite.pixels[:, 12:22], space.palette[gt])
    np.testing.assert_array_equal(composite.pixels[:, 24:], space.palette[pred])
    assert (composite.pixels[:, 10:12] == space.full_palette()[space.gutter_slot]).all()


def test_item_without_image_gets_a_pad_panel_in_an_rgb_grid(make_item: MakeItem) -> None:
    image = np.full((8, 10, 3), 7, dtype=np.uint8)
    items = [make_item(np.ones((8, 10), np.uint8), image=image), make_item(np.ones((8, 10), np.uint8))]
    space = space_for(5)
    composite = compose_grid(items, space, options(panels=("image", "gt"), columns=1))
    pad = space.full_palette()[space.pad_slot]
    assert (composite.pixels[:8, :10] == 7).all()
    assert (composite.pixels[10:, :10] == pad).all()


def test_image_panel_without_any_image_stays_paletted(make_item: MakeItem) -> None:
    space = space_for(5)
    composite = compose_pair(make_item(np.ones((8, 10), np.uint8)), space, options(panels=("image", "gt")))
    assert composite.palette is not None
    assert (composite.pixels[:, :10] == space.pad_slot).all()
    assert (composite.pixels[:, 12:] == 1).all()


def test_letterboxed_image_is_padded_with_the_pad_colour(make_item: MakeItem) -> None:
    image = np.full((10, 20, 3), 200, dtype=np.uint8)
    space = space_for(5)
    item = make_item(np.ones((10, 20), np.uint8), image=image)
    composite = compose_pair(item, space, options(size=(20, 20), resize="letterbox", panels=("image",)))
    pad = space.full_palette()[space.pad_slot]
    assert (composite.pixels[:5] == pad).all() and (composite.pixels[15:] == pad).all()
    assert (composite.pixels[5:15] == 200).all()


# --- index space ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_PALETTES)
@pytest.mark.parametrize("num_classes", [2, 21, 150, 249, 400])
def test_reserved_colours_differ_from_every_class_colour(name: str, num_classes: int) -> None:
    space = space_for(num_classes, ignore_index=None, palette=name)
    full = space.full_palette()
    assert full.shape == (num_classes + RESERVED_SLOTS, 3)
    assert len({tuple(row) for row in full.tolist()}) == num_classes + RESERVED_SLOTS
    assert space.fits_8bit == (num_classes + RESERVED_SLOTS <= 256)


def test_reserved_colours_move_off_grey_class_colours() -> None:
    # A palette that takes every preferred grey: white, the dark pad, the mid gutter, the light backdrop.
    palette = build_palette([[255, 255, 255], [40, 40, 40], [96, 96, 96], [226, 226, 226]], 4)
    space = IndexSpace(4, None, palette)
    reserved = space.full_palette()[4 : 4 + len(RESERVED_ROLES)]
    assert delta_e(reserved, palette).min() >= MIN_RESERVED_DELTA_E


def test_reserved_colours_found_when_every_grey_is_a_class() -> None:
    greys = [[g, g, g] for g in range(256)]
    space = IndexSpace(300, None, build_palette(greys, 300))
    assert len({tuple(row) for row in space.full_palette().tolist()}) == 300 + RESERVED_SLOTS


def test_ignore_index_inside_the_class_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"outside the classes 0\.\.4 .* got 3, which is also a class id"):
        space_for(5, ignore_index=3)


def test_palette_must_match_num_classes() -> None:
    with pytest.raises(ValueError, match=r"palette must have shape \(6, 3\), got \(5, 3\)"):
        IndexSpace(6, None, build_palette("voc", 5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": (0, 4)}, "panel_size"),
        ({"columns": 0}, "columns must be at least 1"),
        ({"gutter": -1}, "gutter must be"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options(**kwargs)


@pytest.mark.parametrize("panels", [("gt", "gt"), ("heatmap",), (), "gt", ("gt", 3)])
def test_panel_lists_the_composer_cannot_draw_are_refused(panels: object) -> None:
    """The config validates compose.panels with this check; options built from the plan are not checked again."""
    with pytest.raises(ValueError, match="expected a non-empty list of distinct panels from image, gt, pred"):
        check_panels(panels)
    assert check_panels(["image", "overlay"]) == ("image", "overlay")
