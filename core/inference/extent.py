"""Which part of the raster to predict: the whole of it, a bounding box or polygons, in any CRS."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import CRSError
from rasterio.features import bounds as geometry_bounds
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window, from_bounds

from ..errors import ConfigError, PredictionError


class ExtentOutside(PredictionError):
    """The extent does not overlap the raster (a caller with several rasters may leave this one out)."""


def geometries(polygon: dict[str, Any]) -> list[dict[str, Any]]:
    """The geometries of a GeoJSON geometry, Feature or FeatureCollection."""
    kind = polygon.get("type") if isinstance(polygon, dict) else None
    if kind == "FeatureCollection":
        found = [g for f in polygon.get("features", []) for g in geometries(f)]
    elif kind == "Feature":
        found = geometries(polygon["geometry"]) if polygon.get("geometry") else []
    elif kind in ("Polygon", "MultiPolygon"):
        found = [polygon]
    else:
        raise ConfigError(f"the extent polygon is a {kind or type(polygon).__name__}, not a GeoJSON polygon",
                          fix="pass a Polygon or MultiPolygon geometry, Feature or FeatureCollection")
    if not found:
        raise ConfigError("the extent polygon holds no geometry", fix="select at least one polygon feature")
    return found


def extent_window(
    reader: Any,
    raster: Path,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str | None = None,
    polygon: dict[str, Any] | None = None,
    polygon_crs: str | None = None,
) -> tuple[Window, list[dict[str, Any]] | None]:
    """The window of ``reader`` to predict and the polygons (in the raster's CRS) that mask it, if any.

    ``bbox`` (minx, miny, maxx, maxy) or ``polygon`` (GeoJSON) are in ``bbox_crs`` / ``polygon_crs``, or in the
    raster's CRS when that is None. ExtentOutside (a PredictionError) when the extent misses the raster (``raster`` is
    named).
    """
    full = Window(0, 0, reader.width, reader.height)
    if bbox is None and polygon is None:
        return full, None
    given = bbox_crs if bbox is not None else polygon_crs
    if given and reader.crs is None:
        raise PredictionError("the raster has no CRS, so an extent in another CRS cannot be placed on it",
                              path=raster, fix="assign the raster a CRS, or give the extent in pixel-grid units")
    crs = given or reader.crs
    try:
        if bbox is not None:
            shapes = None
            box = transform_bounds(crs, reader.crs, *bbox, densify_pts=21) if given else bbox
        else:
            shapes = [transform_geom(crs, reader.crs, g) if given else g for g in geometries(polygon)]
            corners = np.array([geometry_bounds(g) for g in shapes])
            box = (*corners[:, :2].min(axis=0), *corners[:, 2:].max(axis=0))
    except (CRSError, ValueError) as err:
        raise ConfigError(f"the extent's CRS {crs!r} is not usable ({err})", fix="give an EPSG code or WKT") from err
    win = from_bounds(*box, transform=reader.transform)
    col0, row0 = max(math.floor(win.col_off + 1e-6), 0), max(math.floor(win.row_off + 1e-6), 0)
    col1 = min(math.ceil(win.col_off + win.width - 1e-6), reader.width)
    row1 = min(math.ceil(win.row_off + win.height - 1e-6), reader.height)
    if col1 <= col0 or row1 <= row0:
        what = "bounding box" if bbox is not None else "polygon"
        raise ExtentOutside(
            f"the {what} ({', '.join(f'{v:.6g}' for v in box)} in the raster's CRS) lies outside the raster "
            f"({', '.join(f'{v:.6g}' for v in reader.bounds)})",
            path=raster, fix="pick an extent that overlaps the raster (check its CRS), or predict the whole raster",
        )
    return Window(col0, row0, col1 - col0, row1 - row0), shapes
