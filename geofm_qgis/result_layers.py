"""Prediction results as styled layers: a paletted class raster (package's names and colours), confidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsColorRampShader,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtGui import QColor

GROUP = "geofm predictions"


def prediction_name(raster: str, model: str) -> str:
    """A prediction layer's name: '<raster> — <model>', so predictions of one raster by two models differ."""
    return f"{Path(raster).stem} — {Path(model).stem}"


def paletted_renderer(layer: QgsRasterLayer, classes: list[dict[str, Any]]) -> QgsPalettedRasterRenderer:
    """A renderer drawing each class value in its colour, labelled with its name (band 1)."""
    items = [QgsPalettedRasterRenderer.Class(float(c["value"]), QColor(c["colour"]), c["name"]) for c in classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, items)


def confidence_renderer(layer: QgsRasterLayer) -> QgsSingleBandPseudoColorRenderer:
    """Confidence 0..1 on a light-to-dark ramp."""
    ramp = QgsStyle.defaultStyle().colorRamp("Viridis")
    shader_fn = QgsColorRampShader(0.0, 1.0, ramp)
    shader_fn.classifyColorRamp(5, 1, layer.extent(), layer.dataProvider())
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    return renderer


def add_prediction(name: str, classes_path: str, classes: list[dict[str, Any]],
                   confidence_path: str | None = None, project: QgsProject | None = None) -> list[QgsRasterLayer]:
    """Load the class raster (and the confidence raster) into the group 'geofm predictions', styled."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.findGroup(GROUP) or root.insertGroup(0, GROUP)
    layers = []
    if confidence_path:
        confidence = QgsRasterLayer(confidence_path, f"{name} — confidence")
        if confidence.isValid():
            confidence.setRenderer(confidence_renderer(confidence))
            layers.append(confidence)
    layer = QgsRasterLayer(classes_path, name)
    if layer.isValid():
        layer.setRenderer(paletted_renderer(layer, classes))
        layers.insert(0, layer)
    for item in layers[::-1]:
        project.addMapLayer(item, False)
        group.insertLayer(0, item)
    return layers

