"""From QGIS layers to the files the engine reads, and back: paths, exports, writability checks."""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import (
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterDataProvider,
    QgsRasterFileWriter,
    QgsRasterLayer,
    QgsRasterPipe,
    QgsRectangle,
)


def layer_file(layer: QgsMapLayer | None) -> str | None:
    """The file behind a GDAL raster or OGR vector layer, or None (WMS, XYZ, database, virtual, memory…)."""
    if layer is None or layer.providerType() not in ("gdal", "ogr"):
        return None
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    return path if path and os.path.isfile(path) else None


def output_problem(path: str, suffixes: tuple[str, ...] = ()) -> str | None:
    """Why ``path`` cannot be written, in plain words, or None when it can."""
    if not path:
        return "No output file is chosen: pick where to save it."
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        return f"{path}: the file name should end in {' or '.join(suffixes)}."
    if p.is_dir():
        return f"{path} is a folder: add a file name."
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        return f"{path}: this location is not writable. Choose a folder you can write to."
    return None


def export_raster(layer: QgsRasterLayer, output: str, extent: QgsRectangle, pixel_size: float) -> str | None:
    """Write what ``layer`` shows over ``extent`` at ``pixel_size`` (layer CRS units) to a GeoTIFF.

    Works for any raster provider (WMS, XYZ, virtual). Returns an error text, or None when written.
    """
    width = max(1, round(extent.width() / pixel_size))
    height = max(1, round(extent.height() / pixel_size))
    provider = layer.dataProvider().clone()
    pipe = QgsRasterPipe()
    if not pipe.set(provider):
        return f"{layer.name()}: QGIS cannot read this layer's pixels for export."
    if not provider.capabilities() & QgsRasterDataProvider.Capability.Size and layer.renderer() is not None:
        pipe.set(layer.renderer().clone())  # rendered images (WMS/XYZ) are exported as they look
    writer = QgsRasterFileWriter(output)
    writer.setOutputFormat("GTiff")
    code = writer.writeRaster(pipe, width, height, extent, layer.crs(), QgsProject.instance().transformContext())
    return None if code == QgsRasterFileWriter.WriterError.NoError else f"{output}: export failed (code {code})."
