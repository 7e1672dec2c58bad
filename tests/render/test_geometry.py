"""columns: auto — the grid's shape over many item counts, panel sets and panel sizes."""

from __future__ import annotations

import math

import pytest

from segwatch.render.geometry import ASPECT, MIN_PANEL, GridShape, fit_grid, grid_size

GUTTER = 2


def picture(count: int, panels: int, shape: GridShape, extra: int = 0) -> tuple[int, int]:
    height, width = grid_size(count, panels, shape, GUTTER)
    return height + extra, width


@pytest.mark.parametrize("panels", [1, 2, 3, 5, 6])
@pytest.mark.parametrize("size", [(256, 256), (96, 128), (512, 1024), (64, 64)])
@pytest.mark.parametrize("max_width", [1536, 800])
def test_auto_stays_within_max_width_and_near_four_to_three(
    panels: int, size: tuple[int, int], max_width: int
) -> None:
    for count in range(1, 33):
        shape = fit_grid(count, panels=panels, panel_size=size, gutter=GUTTER, max_width=max_width)
        height, width = picture(count, panels, shape)
        assert width <= max_width or shape.panel_size[1] <= MIN_PANEL, (count, shape)
        assert shape.panel_size[1] <= size[1] and 1 <= shape.columns <= count
        # Panels keep their aspect (to a pixel of rounding).
        assert abs(shape.panel_size[0] - size[0] * shape.panel_size[1] / size[1]) <= 1
        # No other column count comes much closer to 4:3: at most by what a half-empty last row is worth.
        best = min(
            abs(math.log(w / h / ASPECT))
            for c in range(1, count + 1)
            for s in [
                fit_grid(count, panels=panels, panel_size=size, gutter=GUTTER, max_width=max_width, columns=c)
            ]
            for h, w in [picture(count, panels, s)]
            if s.panel_size[1] >= min(MIN_PANEL, size[1]) and (w <= max_width or c == 1)
        )
        assert abs(math.log(width / height / ASPECT)) <= best + 0.25 + 1e-3, (count, shape)


def test_the_default_config_no_longer_makes_a_strip() -> None:
    # Issue: four items of gt | pred | error at columns 4 made a 3094 x 275 strip.
    shape = fit_grid(4, panels=3, panel_size=(256, 256), gutter=GUTTER, max_width=1536)
    height, width = picture(4, 3, shape)
    assert width <= 1536 and 0.6 <= width / height <= 2.0, (shape, width, height)
    # Sixteen items of two panels (the defaults): a block, not a row.
    shape = fit_grid(16, panels=2, panel_size=(256, 256), gutter=GUTTER, max_width=1536)
    height, width = picture(16, 2, shape)
    assert width <= 1536 and abs(math.log(width / height / ASPECT)) < 0.45, (shape, width, height)


def test_panels_shrink_before_the_grid_becomes_a_strip() -> None:
    # One item of five large panels cannot be 4:3, but it stays within max_width by shrinking.
    shape = fit_grid(1, panels=5, panel_size=(512, 512), gutter=GUTTER, max_width=1536)
    assert picture(1, 5, shape)[1] <= 1536 and shape.panel_size[1] < 512


def test_header_and_legend_count_toward_the_aspect() -> None:
    plain = fit_grid(8, panels=2, panel_size=(128, 128), gutter=GUTTER, max_width=1536)
    tall_legend = fit_grid(
        8, panels=2, panel_size=(128, 128), gutter=GUTTER, max_width=1536, extra_height=lambda s, w: 600
    )
    assert tall_legend.columns > plain.columns


def test_explicit_columns_are_kept_and_still_fit_max_width() -> None:
    shape = fit_grid(10, panels=3, panel_size=(256, 256), gutter=GUTTER, max_width=1536, columns=4)
    assert shape.columns == 4 and picture(10, 3, shape)[1] <= 1536
    small = fit_grid(3, panels=2, panel_size=(16, 16), gutter=GUTTER, max_width=1536, columns=8)
    assert small == GridShape(3, (16, 16))
