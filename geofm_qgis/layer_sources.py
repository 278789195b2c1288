"""From QGIS layers to the files the engine reads, and back: paths, exports, writability checks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterDataProvider,
    QgsRasterFileWriter,
    QgsRasterFileWriterTask,
    QgsRasterLayer,
    QgsRasterPipe,
    QgsRasterProjector,
    QgsRectangle,
    QgsUnitTypes,
)


def layer_file(layer: QgsMapLayer | None) -> str | None:
    """The file behind a GDAL raster or OGR vector layer, or None (WMS, XYZ, database, virtual, memory…)."""
    if layer is None or layer.providerType() not in ("gdal", "ogr"):
        return None
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    return path if path and os.path.isfile(path) else None


def first_image(layers: list[QgsMapLayer]) -> QgsRasterLayer | None:
    """The first multi-band raster of ``layers`` (an image, not a class raster or a prediction), or None."""
    return next((layer for layer in layers if isinstance(layer, QgsRasterLayer) and layer.bandCount() > 1), None)


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
    if not folder.exists():
        return f"{path}: the folder {folder} does not exist. Create it first, or choose an existing folder."
    if not folder.is_dir() or not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        return f"{path}: this location is not writable. Choose a folder you can write to."
    return None


#: Largest export, in pixels: a web layer is fetched tile by tile, and a bigger image is rarely what was meant.
MAX_EXPORT_PIXELS = 12_000 * 12_000


@dataclass
class ExportPlan:
    """What exporting a raster layer for training writes: an extent, its CRS and a pixel size in that CRS's units."""

    extent: QgsRectangle
    crs: QgsCoordinateReferenceSystem
    pixel_size: float
    basis: str  # where the extent and resolution come from, in words

    @property
    def size(self) -> tuple[int, int]:
        return (max(1, round(self.extent.width() / self.pixel_size)),
                max(1, round(self.extent.height() / self.pixel_size)))

    def describe(self) -> str:
        """'489 × 443 pixels of 28.5 m in EPSG:3358 (the labels' extent and resolution)'."""
        width, height = self.size
        unit = "°" if self.crs.isGeographic() else " m" if self.crs.mapUnits() == QgsUnitTypes.DistanceMeters else (
            " " + QgsUnitTypes.toString(self.crs.mapUnits()))
        return (f"{width} × {height} pixels of {self.pixel_size:.6g}{unit} in {crs_label(self.crs)} "
                f"({self.basis})")


def crs_label(crs: QgsCoordinateReferenceSystem) -> str:
    """'EPSG:3358'; for a custom CRS the name its WKT gives it, else 'a custom CRS (no EPSG code)'."""
    from ..core.grid import wkt_name

    if crs.authid() and not crs.authid().upper().startswith("USER:"):
        return crs.authid()
    name = wkt_name(crs.toWkt()) or wkt_name(f'X["{crs.description()}"]')
    return f"“{name}” (no EPSG code)" if name else "a custom CRS (no EPSG code)"


def export_plan(layer: QgsRasterLayer, labels: QgsMapLayer | None, canvas) -> ExportPlan:
    """Where, in which CRS and how fine to export ``layer`` so it can be trained on with ``labels``.

    A raster with pixels of its own (a virtual raster…) keeps its grid. A web layer (WMS, XYZ) has none: it is
    drawn in the labels' CRS over the labels' extent, at the label raster's resolution (polygon labels: the map
    view's ground resolution); without labels, over the map view, in the map's CRS, at its resolution.
    """
    provider = layer.dataProvider()
    if provider.capabilities() & QgsRasterDataProvider.Capability.Size and provider.xSize() > 0:
        return ExportPlan(layer.extent(), layer.crs(), layer.extent().width() / provider.xSize(),
                          "the layer's own extent and resolution")
    view_crs = canvas.mapSettings().destinationCrs()
    if labels is not None and labels is not layer and labels.crs().isValid():
        crs = labels.crs()
        if isinstance(labels, QgsRasterLayer) and labels.width() > 0:
            return ExportPlan(labels.extent(), crs, labels.rasterUnitsPerPixelX(),
                              "the label raster's extent and resolution")
        return ExportPlan(labels.extent(), crs, _view_pixel(canvas, crs),
                          "the labels' extent, at the map view's resolution")
    crs = view_crs if view_crs.isValid() else layer.crs()
    return ExportPlan(canvas.extent(), crs, canvas.mapUnitsPerPixel(), "the map view's extent and resolution")


def _view_pixel(canvas, crs: QgsCoordinateReferenceSystem) -> float:
    """The ground size of one screen pixel of the map view, in ``crs`` units."""
    settings = canvas.mapSettings()
    extent = QgsCoordinateTransform(settings.destinationCrs(), crs, QgsProject.instance()).transformBoundingBox(
        canvas.extent())
    return extent.width() / max(1, settings.outputSize().width())


def export_problem(layer: QgsRasterLayer, plan: ExportPlan) -> str | None:
    """Why ``plan`` cannot be exported, in plain words, or None."""
    width, height = plan.size
    if plan.pixel_size <= 0 or plan.extent.isEmpty():
        return f"{layer.name()}: there is nothing to export here (an empty extent). Zoom to the area to export."
    if width * height > MAX_EXPORT_PIXELS:
        return (f"{layer.name()}: the export would be {width} × {height} pixels ({plan.describe()}), too large to "
                "fetch. Zoom in, or use labels that cover a smaller area.")
    return None


def export_task(layer: QgsRasterLayer, output: str, plan: ExportPlan) -> QgsRasterFileWriterTask:
    """A QgsTask writing what ``layer`` shows over ``plan`` to the GeoTIFF ``output`` (reprojected when the plan's
    CRS is not the layer's). Works for any raster provider (WMS, XYZ, virtual); progress shows in QGIS's task bar.
    """
    provider = layer.dataProvider().clone()
    pipe = QgsRasterPipe()
    pipe.set(provider)
    if not provider.capabilities() & QgsRasterDataProvider.Capability.Size and layer.renderer() is not None:
        pipe.set(layer.renderer().clone())  # rendered images (WMS/XYZ) are exported as they look
    context = QgsProject.instance().transformContext()
    if plan.crs != layer.crs():
        projector = QgsRasterProjector()
        projector.setCrs(layer.crs(), plan.crs, context)
        pipe.set(projector)
    writer = QgsRasterFileWriter(output)
    writer.setOutputFormat("GTiff")
    width, height = plan.size
    return QgsRasterFileWriterTask(writer, pipe, width, height, plan.extent, plan.crs, context)
