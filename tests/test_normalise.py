"""Band statistics in one streaming pass, and normalisation that never yields NaN."""

import json
import warnings

import numpy as np
import pytest

from geofm.core.errors import ConfigError, DataError, GeoFMWarning
from geofm.core.normalise import BandStats, compute_stats, normalise


def _samples(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k, size in enumerate((8, 16, 5)):
        data = rng.normal(100 * (k + 1), 10, (3, size, size)).astype(np.float32)
        valid = rng.random((size, size)) > 0.3
        data[:, ~valid] = -99999
        out.append((data, valid))
    out[0][0][1, 0, 0] = np.nan  # a NaN in one band of a valid pixel
    out[1][0][2, 0, 0] = np.inf
    return out


def test_streamed_mean_and_std_match_numpy_over_valid_finite_pixels():
    samples = _samples()
    stats = compute_stats(iter(samples))
    for b in range(3):
        pix = np.concatenate([d[b][v & np.isfinite(d[b])] for d, v in samples]).astype(np.float64)
        assert stats.mean[b] == pytest.approx(pix.mean(), rel=1e-9)
        assert stats.std[b] == pytest.approx(pix.std(), rel=1e-9)


def test_percentiles_from_a_growing_histogram_are_close_to_numpy():
    samples = _samples()
    stats = compute_stats(samples, percentiles=(2, 98))
    pix = np.concatenate([d[0][v] for d, v in samples])
    width = (pix.max() - pix.min()) / 1000
    assert stats.low[0] == pytest.approx(np.percentile(pix, 2, method="inverted_cdf"), abs=width)
    assert stats.high[0] == pytest.approx(np.percentile(pix, 98, method="inverted_cdf"), abs=width)


def test_constant_band_warns_by_name_and_normalises_to_zero():
    data = np.stack([np.arange(16.0).reshape(4, 4), np.full((4, 4), 7.0)]).astype(np.float32)
    valid = np.ones((4, 4), bool)
    with pytest.warns(GeoFMWarning, match="band 2 is constant"):
        stats = compute_stats([(data, valid)])
    assert stats.std[1] == 1.0
    for mode in ("global", "per_tile"):
        out = normalise(data, valid, stats, mode)
        assert np.isfinite(out).all() and (out[1] == 0).all()


def test_no_valid_pixel_is_a_data_error():
    data = np.zeros((2, 3, 3), np.float32)
    with pytest.raises(DataError, match="no valid pixel"):
        compute_stats([(data, np.zeros((3, 3), bool))])


def test_global_normalisation_standardises_and_zeroes_invalid_pixels():
    samples = _samples()
    stats = compute_stats(samples)
    outs = [normalise(data, valid, stats) for data, valid in samples]
    for out, (_, valid) in zip(outs, samples, strict=True):
        assert out.dtype == np.float32 and np.isfinite(out).all()
        assert (out[:, ~valid] == 0).all()
    pooled = np.concatenate([out[0][valid] for out, (_, valid) in zip(outs, samples, strict=True)])
    assert pooled.mean() == pytest.approx(0, abs=1e-5) and pooled.std() == pytest.approx(1, abs=1e-5)


def test_per_tile_normalisation_centres_each_band_and_empty_tile_is_zero():
    data, valid = _samples()[1]
    out = normalise(data, valid, None, mode="per_tile")
    assert out[0][valid].mean() == pytest.approx(0, abs=1e-5) and out[0][valid].std() == pytest.approx(1, abs=1e-3)
    empty = normalise(data, np.zeros_like(valid), None, mode="per_tile")
    assert (empty == 0).all()


def test_stats_survive_json_and_misuse_is_explained():
    stats = BandStats([1.0, 2.0], [0.5, 4.0], [0.0, 1.0], [3.0, 9.0])
    assert BandStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    with pytest.raises(DataError, match="3 bands but the statistics are for 2"):
        normalise(np.zeros((3, 2, 2), np.float32), np.ones((2, 2), bool), stats)
    with pytest.raises(ConfigError, match="needs band statistics"):
        normalise(np.zeros((2, 2, 2), np.float32), np.ones((2, 2), bool), None)
    with pytest.raises(ConfigError, match="unknown normalisation mode"):
        normalise(np.zeros((2, 2, 2), np.float32), np.ones((2, 2), bool), stats, mode="minmax")


def test_low_high_clip_outliers_before_standardising():
    stats = BandStats([0.0], [1.0], [-2.0], [2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normalise(np.array([[[1e9, -1e9, 1.0]]], np.float32), np.ones((1, 3), bool), stats)
    np.testing.assert_array_equal(out, [[[2.0, -2.0, 1.0]]])
