"""Overlay, error and boundary panels, checked pixel by pixel on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from segwatch.errors import ArtifactError
from segwatch.render.compose import ComposeOptions, compose_grid
from segwatch.render.indexspace import IndexSpace
from segwatch.render.items import Item
from segwatch.render.panels import (
    CORRECT_GREY,
    OUTLINE_DARK,
    OUTLINE_LIGHT,
    WRONG_RED,
    boundary_colour,
    boundary_mask,
)

PALETTE = np.array([[10, 20, 30], [200, 0, 0], [0, 200, 0]], dtype=np.uint8)
SPACE = IndexSpace(num_classes=3, ignore_index=255, palette=PALETTE)


def options(*panels: str, alpha: float = 0.5) -> ComposeOptions:
    return ComposeOptions(panel_size=(4, 6), resize="stretch", panels=panels, columns=4, overlay_alpha=alpha)


def maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gt = np.zeros((4, 6), dtype=np.uint8)
    gt[:, 3:] = 2
    gt[0, 0] = 255  # ignored
    pred = gt.copy()
    pred[0, 0] = 1
    pred[3, 5] = 1  # the one wrong labelled pixel
    image = np.full((4, 6, 3), 100, dtype=np.uint8)
    image[2, 1] = (40, 80, 120)
    return gt, pred, image


def test_error_panel_marks_the_wrong_pixel_red_and_only_it() -> None:
    gt, pred, image = maps()
    panel = compose_grid([Item(gt, pred, image)], SPACE, options("error")).pixels
    np.testing.assert_array_equal(panel[3, 5], WRONG_RED)
    red = (panel == WRONG_RED).all(axis=-1)
    assert red.sum() == 1
    np.testing.assert_array_equal(panel[2, 1], (20, 40, 60))  # correct: the image at half brightness
    np.testing.assert_array_equal(panel[0, 0], SPACE.full_palette()[SPACE.ignore_slot])


def test_error_panel_without_an_image_shows_correct_pixels_grey() -> None:
    gt, pred, _ = maps()
    panel = compose_grid([Item(gt, pred, None)], SPACE, options("error")).pixels
    np.testing.assert_array_equal(panel[1, 1], CORRECT_GREY)
    np.testing.assert_array_equal(panel[3, 5], WRONG_RED)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.8])
def test_overlay_blends_prediction_colour_over_the_image_by_alpha(alpha: float) -> None:
    gt = np.zeros((4, 6), dtype=np.uint8)
    pred = np.full((4, 6), 2, dtype=np.uint8)
    image = np.full((4, 6, 3), 100, dtype=np.uint8)
    panel = compose_grid([Item(gt, pred, image)], SPACE, options("overlay", alpha=alpha)).pixels
    expected = np.rint((1 - alpha) * 100 + alpha * PALETTE[2].astype(float)).astype(np.uint8)
    assert (panel.reshape(-1, 3) == expected).all()


def test_overlay_draws_class_boundaries_in_a_line_that_contrasts_with_the_pixels_under_it() -> None:
    gt, pred, image = maps()
    panel = compose_grid([Item(gt, pred, image)], SPACE, options("overlay", alpha=0.5)).pixels
    # Column 2 is class 0 with class 2 on its right: a boundary pixel. Under it the blend of the image
    # (100) and class 0's dark colour: a white line, not a dark one that would vanish.
    np.testing.assert_array_equal(panel[1, 2], OUTLINE_LIGHT)
    np.testing.assert_array_equal(panel[1, 1], np.rint(0.5 * 100 + 0.5 * PALETTE[0].astype(float)))
    light = np.full_like(image, 250)
    bright = compose_grid([Item(gt, pred, light)], SPACE, options("overlay", alpha=0.2)).pixels
    np.testing.assert_array_equal(bright[1, 2], OUTLINE_DARK)


def test_boundary_panel_draws_prediction_edges_over_ground_truth() -> None:
    gt = np.zeros((4, 6), dtype=np.uint8)
    pred = gt.copy()
    pred[:, 3:] = 1
    panel = compose_grid([Item(gt, pred, None)], SPACE, options("boundary")).pixels
    edge = boundary_colour(SPACE)
    assert (panel[:, 2] == edge).all()
    assert (panel[:, [0, 1, 3, 4, 5]] == PALETTE[0]).all()


def test_boundary_mask_is_one_pixel_wide() -> None:
    labels = np.zeros((3, 4), dtype=np.int64)
    labels[:, 2:] = 1
    assert boundary_mask(labels).sum() == 3 and boundary_mask(labels)[:, 1].all()


def test_panels_are_tiled_in_order_with_gutters() -> None:
    gt, pred, image = maps()
    opts = options("image", "gt", "error")
    pixels = compose_grid([Item(gt, pred, image)] * 2, SPACE, opts).pixels
    assert pixels.shape == (4, 2 * (3 * 6 + 2 * 2) + 2, 3)
    np.testing.assert_array_equal(pixels[:, :6], image)
    np.testing.assert_array_equal(pixels[1, 8 + 4], PALETTE[2])
    np.testing.assert_array_equal(pixels[3, 16 + 5], WRONG_RED)


def test_unknown_class_id_names_the_file() -> None:
    gt, pred, _ = maps()
    pred[1, 1] = 7
    with pytest.raises(ArtifactError, match=r"pred\.npy: class id 7 outside \[0, 3\)"):
        compose_grid([Item(gt, pred, None, files={"pred": "pred.npy"})], SPACE, options("error"))


def test_a_stray_ground_truth_id_is_refused_under_an_overlay_too() -> None:
    gt, pred, image = maps()
    gt[2, 2] = 9
    with pytest.raises(ArtifactError, match=r"gt\.npy: class id 9 outside \[0, 3\)"):
        compose_grid([Item(gt, pred, image, files={"gt": "gt.npy"})], SPACE, options("image", "overlay"))
