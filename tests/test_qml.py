"""The .qml beside a class raster: QGIS opens the GeoTIFF from disk with the class names and colours."""

from __future__ import annotations

import numpy as np
from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

from geofm.core.classes import ClassMap
from geofm.core.qml import write_style

from rasters import write_raster


def test_qgis_opens_the_class_raster_with_names_and_colours(qgis_app, tmp_path):
    classes = ClassMap.from_list([{"value": 1, "name": "water & marsh", "colour": "#1f78b4"},
                                  {"value": 4, "name": "forest", "colour": "#1b7837"}])
    raster = write_raster(tmp_path / "classes.tif", np.array([[[1, 4], [4, 1]]], dtype=np.uint8))
    assert write_style(raster, classes) == tmp_path / "classes.qml"
    layer = QgsRasterLayer(str(raster), "from disk")  # as a colleague opens it: no geofm involved
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [(c.value, c.label, c.color.name()) for c in renderer.classes()] == [
        (1.0, "water & marsh", "#1f78b4"), (4.0, "forest", "#1b7837")]
