"""Class discovery from label rasters, and the value <-> index map a model package keeps."""

import json
import re

import numpy as np
import pytest

from geofm.core.classes import ClassInfo, ClassMap, classes_from_raster
from geofm.core.errors import LabelError

from rasters import write_raster


def test_classes_from_uint8_raster_take_colour_table_and_skip_nodata(tmp_path):
    labels = np.array([[3, 3, 7], [7, 0, 255]], dtype=np.uint8)
    path = write_raster(tmp_path / "l.tif", labels, nodata=255, colormap={3: (255, 0, 0, 255), 7: (0, 0, 255, 255)})
    cm = classes_from_raster(path, names={3: "urban"})
    assert cm.values == [0, 3, 7]
    assert cm.names == ["class 0", "urban", "class 7"]
    assert classes_from_raster(path, names=["bare", "urban", "water"]).names == ["bare", "urban", "water"]
    assert cm.colours[1:] == ["#ff0000", "#0000ff"]


def test_without_colour_table_every_class_gets_its_own_colour(tmp_path):
    path = write_raster(tmp_path / "l.tif", np.arange(30, dtype=np.int16).reshape(5, 6))
    colours = classes_from_raster(path).colours
    assert len(set(colours)) == 30
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)


def test_scan_is_streamed_and_finds_values_only_in_the_last_rows(tmp_path):
    labels = np.full((50, 8), 1.0, dtype=np.float32)
    labels[-1, -1] = 9.0
    labels[0, 0] = -99999
    path = write_raster(tmp_path / "l.tif", labels, nodata=-99999)
    assert classes_from_raster(path, max_pixels=16).values == [1, 9]
    assert classes_from_raster(path, ignore_values=[9]).values == [1]


def test_float_labels_that_are_not_whole_numbers_are_refused(tmp_path):
    path = write_raster(tmp_path / "l.tif", np.array([[1.0, 2.5]], dtype=np.float32))
    with pytest.raises(LabelError, match="not whole numbers") as err:
        classes_from_raster(path)
    assert str(path) in str(err.value) and "nearest" in str(err.value)


def test_label_raster_without_a_valid_pixel_is_refused(tmp_path):
    path = write_raster(tmp_path / "l.tif", np.full((4, 4), -99999, dtype=np.float32), nodata=-99999)
    with pytest.raises(LabelError, match="no valid pixel") as err:
        classes_from_raster(path)
    assert str(path) in str(err.value)


def test_real_scene_has_seven_classes(scene_labels):
    assert classes_from_raster(scene_labels).values == [1, 2, 3, 4, 5, 6, 7]


def _cm():
    return ClassMap([ClassInfo(30, "water", "#0000ff"), ClassInfo(10, "urban", "#ff0000"), ClassInfo(20, "crop", "#00ff00")])


def test_encode_maps_values_to_class_order_and_invalid_to_minus_one():
    values = np.array([[10, 20, 30], [30, 99, 10]], dtype=np.float32)
    valid = np.array([[True, True, True], [True, True, False]])
    got = _cm().encode(values, valid, ignore=[99])
    np.testing.assert_array_equal(got, [[1, 2, 0], [0, -1, -1]])
    assert got.dtype == np.int64


def test_encode_names_values_outside_the_classes_and_the_fix():
    with pytest.raises(LabelError, match=r"label values 40, 50 are not among the classes") as err:
        _cm().encode(np.array([10, 40, 50, 40]), path="labels.tif")
    assert "labels.tif" in str(err.value) and "ignore values" in str(err.value)


def test_decode_inverts_encode_and_fills_ignored():
    cm = _cm()
    values = np.array([10, 20, 30, 20])
    np.testing.assert_array_equal(cm.decode(cm.encode(values)), values)
    np.testing.assert_array_equal(cm.decode(np.array([-1, 2]), fill=255), [255, 20])


def test_class_list_survives_json():
    cm = _cm()
    again = ClassMap.from_list(json.loads(json.dumps(cm.to_list())))
    assert again == cm and again.num_classes == 3 and again.names == ["water", "urban", "crop"]


def test_repeated_class_values_are_refused():
    with pytest.raises(LabelError, match="repeated"):
        ClassMap([ClassInfo(1, "a", "#000000"), ClassInfo(1, "b", "#ffffff")])
