"""Tile windows cover every pixel; the spatial split never lets a validation tile touch a training tile."""

import numpy as np
import pytest
from rasterio.windows import Window

from geofm.core.errors import ConfigError, GridError
from geofm.core.tiles import labelled_windows, tile_windows


def _coverage(windows, width, height):
    hits = np.zeros((height, width), dtype=int)
    for w in windows:
        hits[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    return hits


def test_windows_cover_every_pixel_with_edge_windows_shifted_inward():
    windows = tile_windows(300, 200, 128)
    assert sorted({w.col_off for w in windows}) == [0, 64, 128, 172]
    assert sorted({w.row_off for w in windows}) == [0, 64, 72]
    assert all(w.width == w.height == 128 for w in windows)
    hits = _coverage(windows, 300, 200)
    assert hits.min() >= 1 and hits.shape == (200, 300)


def test_exact_fit_gives_one_window_and_area_limits_the_grid():
    assert tile_windows(256, 256, 256) == [Window(0, 0, 256, 256)]
    inside = tile_windows(100, 100, 16, stride=16, area=Window(40, 50, 32, 20))
    assert {(w.col_off, w.row_off) for w in inside} == {(40, 50), (56, 50), (40, 54), (56, 54)}


def test_raster_smaller_than_a_tile_says_the_sizes_and_the_fix():
    with pytest.raises(GridError, match="300×100 px, smaller than one 256×256 px tile") as err:
        tile_windows(300, 100, 256)
    assert "at most 100 px" in str(err.value)
    with pytest.raises(ConfigError, match="stride"):
        tile_windows(300, 300, 64, stride=100)


def test_windows_without_a_labelled_pixel_are_skipped():
    labels = np.full((64, 64), -1, dtype=np.int64)
    labels[5, 40] = 2
    windows = tile_windows(64, 64, 16, stride=16)
    kept = labelled_windows(windows, lambda w: labels[w.row_off : w.row_off + 16, w.col_off : w.col_off + 16])
    assert kept == [Window(32, 0, 16, 16)]
