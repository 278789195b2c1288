"""Tile windows cover every pixel; the spatial split never lets a validation tile touch a training tile."""

import numpy as np
import pytest
from rasterio.windows import Window

from geofm.core.errors import ConfigError, GridError
from geofm.core.tiles import labelled_windows, spatial_split, tile_windows


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


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_validation_tile_overlaps_a_training_tile(seed):
    windows = tile_windows(1000, 700, 64, stride=32)
    res = spatial_split(windows, block=200, val_fraction=0.25, seed=seed)
    train, val = res
    assert train and val
    assert len(train) + len(val) + len(res.dropped) == len(windows)
    train_px = _coverage(train, 1000, 700) > 0
    val_px = _coverage(val, 1000, 700) > 0
    assert not (train_px & val_px).any()
    assert f"{len(train)} training tiles" in res.summary and f"{len(val)} validation tiles" in res.summary


def test_split_is_seeded_and_zero_fraction_keeps_everything_for_training():
    windows = tile_windows(800, 800, 64)
    a, b, c = (spatial_split(windows, 160, 0.2, seed=s).val for s in (7, 7, 8))
    assert a == b and a != c
    train, val = spatial_split(windows, 160, 0.0, seed=0)
    assert len(train) == len(windows) and val == []


def test_split_blocks_smaller_than_a_tile_or_too_few_are_refused():
    windows = tile_windows(256, 256, 64)
    with pytest.raises(ConfigError, match="smaller than the tile size"):
        spatial_split(windows, 32, 0.2, 0)
    with pytest.raises(ConfigError, match="smaller split blocks: --split-block 192"):
        spatial_split(windows, 512, 0.2, 0)


def test_windows_without_a_labelled_pixel_are_skipped():
    labels = np.full((64, 64), -1, dtype=np.int64)
    labels[5, 40] = 2
    windows = tile_windows(64, 64, 16, stride=16)
    kept = labelled_windows(windows, lambda w: labels[w.row_off : w.row_off + 16, w.col_off : w.col_off + 16])
    assert kept == [Window(32, 0, 16, 16)]
