"""Grid check: the verdicts a GIS analyst needs before training, on generated rasters and the real scene."""

import dataclasses
import warnings

import numpy as np
import pytest
import rasterio

from geofm.core.errors import GeoFMWarning, GridError, InputError
from geofm.core.grid import ALIGN_LABELS, ALIGNED, UNUSABLE, check_grid, require_usable, write_aligned_labels
from geofm.core.raster import open_raster

from rasters import write_raster


def _pair(tmp_path, *, label_origin=(500_000.0, 6_000_000.0), label_res=10.0, label_crs="EPSG:32633", size=128,
          label_size=128):
    img = write_raster(tmp_path / "img.tif", np.ones((3, size, size), np.uint16))
    lbl = write_raster(tmp_path / "lbl.tif", np.ones((label_size, label_size), np.uint8), crs=label_crs,
                       origin=label_origin, res=label_res, nodata=0)
    return img, lbl


def test_real_scene_crs_tags_differ_but_pair_is_usable(scene_image, scene_labels):
    report = check_grid(scene_image, scene_labels, tile_size=128)
    assert report.verdict == ALIGNED and report.usable
    assert report.image.crs == "EPSG:32119" and report.labels.crs == "EPSG:3358"
    assert report.offset_px < 1.0
    assert "The CRSs differ" in report.summary and "EPSG:3358" in report.summary
    assert report.image.nodata == -99999 and report.labels.nodata == -99999
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        require_usable(report)  # the two tags name one grid (0.00 m apart): nothing to warn the analyst about
    with pytest.warns(GeoFMWarning, match=r"EPSG:3358.*3\.00 m \(0\.10 px\)"):
        require_usable(dataclasses.replace(report, offset_m=3.0, offset_px=0.1))


def test_identical_grids_are_aligned_without_warning(tmp_path):
    report = check_grid(*_pair(tmp_path), tile_size=64)
    assert report.verdict == ALIGNED and report.offset_m == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        require_usable(report)


def test_labels_on_a_shifted_window_of_the_same_lattice_are_aligned(tmp_path):
    report = check_grid(*_pair(tmp_path, label_origin=(500_320.0, 5_999_680.0), label_size=96), tile_size=64)
    assert report.verdict == ALIGNED
    assert report.overlap_px == (96, 96)


def test_half_pixel_shift_needs_alignment(tmp_path):
    report = check_grid(*_pair(tmp_path, label_origin=(500_005.0, 6_000_000.0)), tile_size=64)
    assert report.verdict == ALIGN_LABELS
    assert "fraction of a pixel" in report.summary
    with pytest.raises(GridError, match="align the labels"):
        require_usable(report)
    require_usable(report, align_labels=True)


def test_different_resolution_needs_alignment(tmp_path):
    report = check_grid(*_pair(tmp_path, label_res=20.0, label_size=64), tile_size=64)
    assert report.verdict == ALIGN_LABELS and "resolutions differ" in report.summary


def test_crs_mismatch_above_half_a_pixel_reports_the_offset(tmp_path):
    # Labels in UTM 34N over the same place: a genuinely different CRS, metres apart from the image's.
    with rasterio.open(_pair(tmp_path)[0]) as src:
        from rasterio.warp import transform_bounds

        left, bottom, right, top = transform_bounds(src.crs, "EPSG:32634", *src.bounds)
    img, lbl = _pair(tmp_path, label_crs="EPSG:32634", label_origin=(left, top), label_size=140)
    report = check_grid(img, lbl, tile_size=64)
    assert report.verdict == ALIGN_LABELS
    assert report.offset_px > 0.5
    with pytest.raises(GridError) as err:
        require_usable(report)
    assert f"{report.offset_m:.2f} m" in str(err.value) and "Fix:" in str(err.value)


def test_no_overlap_is_unusable(tmp_path):
    report = check_grid(*_pair(tmp_path, label_origin=(600_000.0, 6_000_000.0)), tile_size=64)
    assert report.verdict == UNUSABLE and "do not overlap" in report.summary
    with pytest.raises(GridError, match="do not overlap"):
        require_usable(report)


def test_overlap_smaller_than_a_tile_is_unusable(tmp_path):
    report = check_grid(*_pair(tmp_path, label_origin=(501_000.0, 6_000_000.0)), tile_size=64)
    assert report.verdict == UNUSABLE
    assert "smaller than one tile" in report.summary and "smaller tile size" in report.fix


def test_raster_smaller_than_tile_is_unusable(tmp_path):
    report = check_grid(*_pair(tmp_path, size=48, label_size=48), tile_size=64)
    assert report.verdict == UNUSABLE
    assert "smaller than one tile" in report.summary and "at most 32" in report.fix


def test_missing_corrupt_and_non_raster_files_are_named(tmp_path):
    img, _ = _pair(tmp_path)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(img.read_bytes()[:300])
    text = tmp_path / "notes.csv"
    text.write_text("a,b\n1,2\n")
    for path, words in ((tmp_path / "nope.tif", "does not exist"), (broken, "damaged or truncated"),
                        (text, "not a raster"), (tmp_path, "folder")):
        with pytest.raises(InputError) as err:
            check_grid(img, path)
        assert str(path) in str(err.value) and words in str(err.value) and "Fix:" in str(err.value)


def test_write_aligned_labels_lands_on_image_grid(tmp_path):
    img, lbl = _pair(tmp_path, label_res=20.0, label_size=64)
    out = write_aligned_labels(lbl, img, tmp_path / "aligned.tif")
    assert check_grid(img, out, tile_size=64).verdict == ALIGNED
    with open_raster(out) as dst, open_raster(img) as src:
        assert dst.transform == src.transform and dst.shape == src.shape
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_write_aligned_labels_refuses_to_overwrite_an_input(tmp_path):
    img, lbl = _pair(tmp_path, label_res=20.0, label_size=64)
    with pytest.raises(GridError, match="overwrite"):
        write_aligned_labels(lbl, img, lbl)
