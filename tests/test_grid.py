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
    assert "image pixels" in str(err.value) and "Fix:" in str(err.value) and "--" not in str(err.value)


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


def test_geographic_crs_offsets_are_metres_on_the_ground_and_pixels(tmp_path):
    """Image in WGS 84 degrees, labels in ED50 over Germany: the datums differ by about 100 m on the ground, not by
    hundreds of kilometres (degrees once read as 111 km each), and the image pixels are given too."""
    img = write_raster(tmp_path / "img.tif", np.ones((3, 128, 128), np.uint16), crs="EPSG:4326",
                       origin=(10.0, 50.0), res=0.0003)
    lbl = write_raster(tmp_path / "lbl.tif", np.ones((128, 128), np.uint8), crs="EPSG:4230", origin=(10.0, 50.0),
                       res=0.0003, nodata=0)
    report = check_grid(img, lbl, tile_size=64)
    assert report.verdict == ALIGN_LABELS
    assert 50 < report.offset_m < 300, report.offset_m
    assert 2 < report.offset_px < 15, report.offset_px
    assert " m (" in report.summary and "image pixels" in report.summary and "km" not in report.summary
    assert "--" not in report.summary and "on the fly" in report.fix


CUSTOM_LCC = ('PROJCS["Lambert NC custom",GEOGCS["NAD83",DATUM["North_American_Datum_1983",SPHEROID["GRS 1980",'
              '6378137,298.257222101]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
              'PROJECTION["Lambert_Conformal_Conic_2SP"],PARAMETER["standard_parallel_1",36.2],'
              'PARAMETER["standard_parallel_2",34.3],PARAMETER["latitude_of_origin",33.75],'
              'PARAMETER["central_meridian",-79],PARAMETER["false_easting",609601.22],'
              'PARAMETER["false_northing",0],UNIT["metre",1]]')


@pytest.mark.parametrize(("name", "shown"), [("Lambert NC custom", "“Lambert NC custom” (no EPSG code)"),
                                             ("unnamed", "a custom CRS (no EPSG code)")])
def test_a_custom_crs_is_named_from_its_wkt(tmp_path, name, shown):
    wkt = CUSTOM_LCC.replace("Lambert NC custom", name)
    img = write_raster(tmp_path / "img.tif", np.ones((3, 128, 128), np.uint16), crs=wkt, origin=(630_000, 228_000))
    lbl = write_raster(tmp_path / "lbl.tif", np.ones((128, 128), np.uint8), crs="EPSG:32119",
                       origin=(630_000, 228_000), nodata=0)
    report = check_grid(img, lbl, tile_size=64)
    assert report.image.crs == shown
    assert shown in report.summary and "()" not in report.summary and "unnamed" not in report.summary


def test_fix_texts_name_no_command_line_flags(tmp_path):
    swapped = check_grid(*reversed(_pair(tmp_path)), tile_size=64)
    small = check_grid(*_pair(tmp_path, size=48, label_size=48), tile_size=64)
    shifted = check_grid(*_pair(tmp_path, label_res=20.0), tile_size=64)
    for report in (swapped, small, shifted):
        assert report.fix and "--" not in report.fix and "`" not in report.fix, report.fix
