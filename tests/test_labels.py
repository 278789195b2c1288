"""Label sources read on the image grid: class rasters (aligned, shifted, other CRS) and vector polygons."""

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform as transform_points
from rasterio.windows import Window

from geofm.core.classes import classes_from_raster
from geofm.core.errors import InputError, LabelError
from geofm.core.labels import RasterLabels, VectorLabels, classes_from_values, read_vector_labels

from rasters import UTM33N, write_polygons, write_raster

X0, Y0, RES = 500_000.0, 6_000_000.0, 10.0


def _image(tmp_path, size=40):
    return write_raster(tmp_path / "img.tif", np.ones((2, size, size), dtype=np.float32))


def _square(c0, r0, c1, r1):
    """Ring of the pixel rectangle [c0,c1) x [r0,r1) of the fixture image, in metres."""
    x0, x1, y0, y1 = X0 + c0 * RES, X0 + c1 * RES, Y0 - r0 * RES, Y0 - r1 * RES
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def test_aligned_label_raster_gives_indices_with_nodata_and_ignore_as_minus_one(tmp_path):
    labels = np.tile(np.array([5, 9, 0, 255], dtype=np.uint8), (40, 10))
    lbl = write_raster(tmp_path / "l.tif", labels, nodata=255)
    cm = classes_from_raster(lbl, ignore_values=[0])
    with rasterio.open(_image(tmp_path)) as img:
        src = RasterLabels(lbl, img, cm, ignore_values=[0])
        got = src.read(Window(0, 0, 8, 2))
        src.close()
    np.testing.assert_array_equal(got, [[0, 1, -1, -1] * 2] * 2)


def test_shifted_label_raster_is_warped_onto_the_image_grid(tmp_path):
    labels = np.repeat(np.arange(1, 5, dtype=np.uint8), 10)[None].repeat(40, 0)  # columns 1..4, 10 px each
    lbl = write_raster(tmp_path / "l.tif", labels, origin=(X0 + 10 * RES, Y0))  # starts 10 px right of the image
    with rasterio.open(_image(tmp_path, size=60)) as img:
        src = RasterLabels(lbl, img, classes_from_raster(lbl), ignore_values=())
        row = src.read(Window(0, 5, 60, 1))[0]
        assert src.area == Window(10, 0, 40, 40)
        src.close()
    np.testing.assert_array_equal(row, [-1] * 10 + [0] * 10 + [1] * 10 + [2] * 10 + [3] * 10 + [-1] * 10)


def test_real_scene_labels_retagged_crs_are_read_as_is(scene_image, scene_labels):
    cm = classes_from_raster(scene_labels)
    with rasterio.open(scene_image) as img, rasterio.open(scene_labels) as raw:
        src = RasterLabels(scene_labels, img, cm)
        full = Window(0, 0, img.width, img.height)
        warped, direct = src.read(full), cm.encode(raw.read(1), raw.read(1) != raw.nodata)
        src.close()
    assert warped.shape == (443, 489)
    # EPSG:3358 vs 32119: well under half a pixel apart, so every label stays on its pixel (no warping)
    np.testing.assert_array_equal(warped, direct)


def test_label_values_outside_the_classes_name_the_file(tmp_path):
    lbl = write_raster(tmp_path / "l.tif", np.array([[1, 2], [3, 1]], dtype=np.uint8))
    cm = classes_from_values([1, 2])
    with rasterio.open(_image(tmp_path, size=2)) as img:
        src = RasterLabels(lbl, img, cm)
        with pytest.raises(LabelError, match=r"label values 3 are not among the classes \[1, 2\]") as err:
            src.read(Window(0, 0, 2, 2))
        src.close()
    assert str(lbl) in str(err.value)


def test_polygons_are_rasterised_per_window_and_outside_is_ignored(tmp_path):
    shapes = [({"type": "Polygon", "coordinates": [_square(2, 2, 6, 5)]}, "water"),
              ({"type": "Polygon", "coordinates": [_square(10, 0, 12, 40)]}, "forest")]  # fmt: skip
    cm = classes_from_values([v for _, v in shapes])
    assert cm.names == ["forest", "water"] and cm.values == [1, 2]
    with rasterio.open(_image(tmp_path)) as img:
        labels = VectorLabels(shapes, img, cm)
        full = labels.read(Window(0, 0, 40, 40))
        part = labels.read(Window(4, 3, 8, 8))
        with_bg = VectorLabels(shapes, img, classes_from_values(["forest", "water"], background=True), background=True)
        bg = with_bg.read(Window(0, 0, 40, 40))
    assert (full[2:5, 2:6] == 1).all() and (full[:, 10:12] == 0).all()
    assert (full >= 0).sum() == 12 + 80
    np.testing.assert_array_equal(part, full[3:11, 4:12])
    assert (bg[full == -1] == 0).all() and (bg[full >= 0] == full[full >= 0] + 1).all()


def test_vector_file_in_lon_lat_is_reprojected_in_x_y_order(tmp_path):
    ring = _square(2, 2, 6, 5)
    lons, lats = transform_points(UTM33N, "EPSG:4326", [x for x, _ in ring], [y for _, y in ring])
    path = write_polygons(tmp_path / "p.gpkg", [(list(zip(lons, lats, strict=True)), {"cls": 7})], crs="EPSG:4326")
    (geom, value), = read_vector_labels(path, "cls", UTM33N)
    xs, ys = zip(*geom["coordinates"][0], strict=True)
    assert value == 7
    assert min(xs) == pytest.approx(X0 + 20, abs=0.5) and max(ys) == pytest.approx(Y0 - 20, abs=0.5)


def test_missing_field_lists_the_fields_there_are(scene_polygons):
    with pytest.raises(LabelError, match=r"no field 'class'; its fields are \['label', 'id'\]") as err:
        read_vector_labels(scene_polygons, "class", "EPSG:32119")
    assert str(scene_polygons) in str(err.value)


def test_real_polygons_give_named_or_numbered_classes(scene_polygons):
    named = read_vector_labels(scene_polygons, "label", "EPSG:32119")
    assert len(named) == 34
    assert classes_from_values(v for _, v in named).names[:3] == ["agriculture", "developed", "forest"]
    numbered = classes_from_values(v for _, v in read_vector_labels(scene_polygons, "id", "EPSG:32119"))
    assert numbered.values == [1, 2, 3, 4, 5, 6, 7]


def test_missing_or_non_vector_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_vector_labels(tmp_path / "nope.gpkg", "cls", UTM33N)
    (tmp_path / "junk.gpkg").write_text("not a vector")
    with pytest.raises(InputError, match="not a vector file"):
        read_vector_labels(tmp_path / "junk.gpkg", "cls", UTM33N)


def test_class_values_from_names_with_mapping_mixed_and_background_clash():
    cm = classes_from_values(["b", "a"], mapping={"a": 5, "b": 3})
    assert cm.values == [3, 5] and cm.names == ["b", "a"]
    with pytest.raises(LabelError, match="not in the given mapping"):
        classes_from_values(["a", "c"], mapping={"a": 1})
    with pytest.raises(LabelError, match="mix names and numbers"):
        classes_from_values([1, "a"])
    with pytest.raises(LabelError, match="background class needs value 0"):
        classes_from_values([0, 1], background=True)
