import numpy as np
import pytest

from segwatch.render.palettes import BUILTIN_PALETTES, CLASS_NAMES, build_palette, voc_colours


def distinct_rows(palette: np.ndarray) -> int:
    return len({tuple(int(v) for v in row) for row in palette})


def test_voc_matches_the_published_colour_map() -> None:
    palette = build_palette("voc", 21)
    assert palette.dtype == np.uint8
    assert palette.shape == (21, 3)
    # background, aeroplane, bicycle, person, tvmonitor
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[15].tolist() == [192, 128, 128]
    assert palette[20].tolist() == [0, 64, 128]


def test_cityscapes_uses_the_train_id_colours() -> None:
    palette = build_palette("cityscapes", 19)
    assert palette[0].tolist() == [128, 64, 128]  # road
    assert palette[1].tolist() == [244, 35, 232]  # sidewalk
    assert palette[10].tolist() == [70, 130, 180]  # sky
    assert palette[13].tolist() == [0, 0, 142]  # car
    assert palette[18].tolist() == [119, 11, 32]  # bicycle


def test_ade20k_uses_the_mmsegmentation_colours() -> None:
    palette = build_palette("ade20k", 150)
    assert palette[0].tolist() == [120, 120, 120]  # wall
    assert palette[2].tolist() == [6, 230, 230]  # sky
    assert palette[6].tolist() == [140, 140, 140]  # road
    assert palette[149].tolist() == [92, 0, 255]  # flag


def test_ade20k_skyscraper_gets_its_own_colour_instead_of_roads() -> None:
    palette = build_palette("ade20k", 150)
    assert CLASS_NAMES["ade20k"][48] == "skyscraper"
    assert palette[48].tolist() != palette[6].tolist()


@pytest.mark.parametrize("name", BUILTIN_PALETTES)
@pytest.mark.parametrize("num_classes", [1, 19, 150, 256, 1000])
def test_builtins_never_repeat_a_colour_even_when_extended(name: str, num_classes: int) -> None:
    palette = build_palette(name, num_classes)
    assert palette.shape == (num_classes, 3)
    assert distinct_rows(palette) == num_classes


@pytest.mark.parametrize("name", BUILTIN_PALETTES)
def test_extension_keeps_the_defined_colours_and_is_deterministic(name: str) -> None:
    defined = len(CLASS_NAMES[name])
    short = build_palette(name, defined)
    long = build_palette(name, defined + 40)
    np.testing.assert_array_equal(long[:defined], short)
    np.testing.assert_array_equal(long, build_palette(name, defined + 40))


def test_class_names_cover_each_builtin() -> None:
    assert len(CLASS_NAMES["voc"]) == 21
    assert len(CLASS_NAMES["cityscapes"]) == 19
    assert len(CLASS_NAMES["ade20k"]) == 150
    assert CLASS_NAMES["cityscapes"][0] == "road"
    assert CLASS_NAMES["ade20k"][:3] == ("wall", "building", "sky")
    assert all(name == name.strip() for names in CLASS_NAMES.values() for name in names)


def test_name_is_matched_case_insensitively() -> None:
    np.testing.assert_array_equal(build_palette(" VOC ", 5), build_palette("voc", 5))


def test_custom_colours_are_used_then_extended_with_unused_ones() -> None:
    # (128, 0, 0) is VOC's colour 1: the extension must skip it rather than repeat it.
    palette = build_palette([[10, 20, 30], [128, 0, 0]], 5)
    assert palette[:2].tolist() == [[10, 20, 30], [128, 0, 0]]
    assert palette[2:].tolist() == [[0, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert distinct_rows(palette) == 5


def test_custom_list_longer_than_num_classes_is_cut() -> None:
    assert build_palette([[1, 1, 1], [2, 2, 2], [3, 3, 3]], 2).tolist() == [[1, 1, 1], [2, 2, 2]]


def test_custom_palette_accepts_a_numpy_array() -> None:
    colours = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    np.testing.assert_array_equal(build_palette(colours, 2), colours)  # type: ignore[arg-type]


def test_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown palette 'coco': expected one of voc, cityscapes, ade20k"):
        build_palette("coco", 10)


@pytest.mark.parametrize(
    "colour",
    [[1, 2], [1, 2, 3, 4], [0, 0, 256], [-1, 0, 0], [0.5, 0, 0], [True, 0, 0], "red", None],
)
def test_bad_custom_colour_is_refused_naming_the_class(colour: object) -> None:
    with pytest.raises(ValueError, match=r"palette colour for class 1 must be"):
        build_palette([[0, 0, 0], colour], 2)  # type: ignore[list-item]


def test_repeated_custom_colour_is_refused_naming_both_classes() -> None:
    with pytest.raises(ValueError, match=r"distinct, got \[9, 9, 9\] for both class 0 and class 2"):
        build_palette([[9, 9, 9], [1, 1, 1], [9, 9, 9]], 3)


@pytest.mark.parametrize("spec", [[], 42])
def test_empty_or_non_list_custom_palette_is_refused(spec: object) -> None:
    with pytest.raises(ValueError, match="palette"):
        build_palette(spec, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_classes", [0, -1, 1 << 25])
def test_num_classes_out_of_range_is_refused(num_classes: int) -> None:
    with pytest.raises(ValueError, match=f"num_classes must be in .*got {num_classes}"):
        build_palette("voc", num_classes)


def test_voc_generator_is_injective_over_many_indices() -> None:
    colours = voc_colours(np.arange(1 << 16)).astype(np.int64)
    keys = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    assert np.unique(keys).size == 1 << 16


# --- reserved colours: a perceptual distance from every class, not just inequality ------------------------


@pytest.mark.parametrize(("name", "count"), [("voc", 21), ("cityscapes", 19), ("ade20k", 150), ("voc", 2)])
def test_reserved_colours_keep_their_delta_e_from_every_builtin_class(name: str, count: int) -> None:
    from segwatch.render.palettes import MIN_RESERVED_DELTA_E, delta_e, reserved_colours

    palette = build_palette(name, count)
    reserved = reserved_colours(palette)
    assert delta_e(reserved, palette).min() >= MIN_RESERVED_DELTA_E
    mutual = delta_e(reserved, reserved)[~np.eye(len(reserved), dtype=bool)]
    assert mutual.min() >= 10


def test_reserved_colours_keep_their_delta_e_from_random_custom_palettes() -> None:
    from segwatch.render.palettes import MIN_RESERVED_DELTA_E, delta_e, reserved_colours

    rng = np.random.default_rng(15)
    for _ in range(200):
        palette = rng.integers(0, 256, size=(int(rng.integers(1, 61)), 3)).astype(np.uint8)
        assert delta_e(reserved_colours(palette), palette).min() >= MIN_RESERVED_DELTA_E, palette.tolist()
