"""Label sources: class rasters or vector polygons, read window by window as class indices on the image grid."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import bounds as geometry_bounds
from rasterio.features import rasterize
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import from_bounds as window_from_bounds
from rasterio.windows import transform as window_transform

from .classes import IGNORE, ClassInfo, ClassMap, default_colour
from .errors import InputError, LabelError
from .fileio import gdal_messages
from .grid import TOLERANCE_PX, crs_offset
from .raster import open_raster

BACKGROUND_VALUE = 0
Shapes = list[tuple[dict[str, Any], Union[int, str]]]  # noqa: UP007 - evaluated at run time (Python 3.9)


class LabelSource(Protocol):
    """Labels on the image grid: ``read(window)`` gives int64 class indices [h,w], -1 where unlabelled.

    ``area`` is the image-grid window (whole pixels, may reach past the image) outside which every label is -1.
    """

    area: Window

    def read(self, window: Window) -> np.ndarray: ...

    def close(self) -> None: ...


def same_grid(a: rasterio.io.DatasetReader, b: rasterio.io.DatasetReader) -> bool:
    """True when both rasters share size and transform (to a thousandth of a pixel) and their CRSs agree to
    within half a pixel over ``b`` — the grid check's tolerance, so a mere CRS re-tag is read as is, unwarped."""
    if (a.width, a.height) != (b.width, b.height):
        return False
    if not a.transform.almost_equals(b.transform, precision=abs(a.transform.a) * 1e-3):
        return False
    if a.crs == b.crs:
        return True
    if a.crs is None or b.crs is None:
        return False
    return crs_offset(a.crs, b.crs, tuple(a.bounds)) <= TOLERANCE_PX * min(map(abs, b.res))


def grid_window(image_src: rasterio.io.DatasetReader, bounds: tuple[float, float, float, float]) -> Window:
    """The image-grid window covering ``bounds`` (left, bottom, right, top in the image CRS), in whole pixels."""
    w = window_from_bounds(*bounds, transform=image_src.transform)
    c0, r0 = math.floor(w.col_off), math.floor(w.row_off)
    return Window(c0, r0, math.ceil(w.col_off + w.width) - c0, math.ceil(w.row_off + w.height) - r0)


class RasterLabels:
    """A class raster read on the image grid; off-grid labels are warped lazily (WarpedVRT, nearest), never copied.

    Nodata, NaN, pixels outside the label raster and ``ignore_values`` become -1; other values must be classes.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        image_src: rasterio.io.DatasetReader,
        class_map: ClassMap,
        ignore_values: Sequence[float] = (),
    ):
        self.path = os.fspath(path)
        self.class_map = class_map
        self.ignore_values = tuple(ignore_values)
        self._file = open_raster(path)
        self._vrt: WarpedVRT | None = None
        self.area = Window(0, 0, image_src.width, image_src.height)
        if not same_grid(self._file, image_src):
            if self._file.crs is None:
                self._file.close()
                raise LabelError(
                    "the label raster has no CRS, and its grid differs from the image's",
                    path=path,
                    fix="assign the label raster's CRS (QGIS: Raster ▸ Projections ▸ Assign Projection)",
                )
            self._vrt = WarpedVRT(
                self._file,
                crs=image_src.crs,
                transform=image_src.transform,
                width=image_src.width,
                height=image_src.height,
                resampling=Resampling.nearest,
                add_alpha=True,
            )
            bounds = transform_bounds(self._file.crs, image_src.crs, *self._file.bounds)
            self.area = grid_window(image_src, bounds)

    def read(self, window: Window) -> np.ndarray:
        """Class indices int64 [h,w] for ``window`` of the image grid."""
        src = self._vrt or self._file
        data = src.read(1, window=window)
        valid = np.ones(data.shape, dtype=bool)
        if self._vrt is not None:
            valid &= self._vrt.read(self._vrt.count, window=window) > 0
        if np.issubdtype(data.dtype, np.floating):
            valid &= np.isfinite(data)
        nodata = self._file.nodata
        if nodata is not None and not np.isnan(nodata):
            valid &= data != nodata
        return self.class_map.encode(data, valid, ignore=self.ignore_values, path=self.path)

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._file.close()


class VectorLabels:
    """Polygons rasterised per window onto the image grid (pixel centres inside a polygon take its class).

    Pixels outside every polygon are -1, or the class of value 0 (``BACKGROUND_VALUE``) when ``background``.
    Where polygons overlap, the later one wins.
    """

    def __init__(
        self,
        shapes: Shapes,
        image_src: rasterio.io.DatasetReader,
        class_map: ClassMap,
        background: bool = False,
    ):
        self.transform = image_src.transform
        self.class_map = class_map
        lookup = {c.name: i for i, c in enumerate(class_map.classes)}
        indices = []
        for _, value in shapes:
            if isinstance(value, str):
                if value not in lookup:
                    raise LabelError(
                        f"the class name {value!r} is not among the classes {class_map.names}",
                        fix="add it to the class list, or correct the name in the attribute table",
                    )
                indices.append(lookup[value])
            else:
                indices.append(int(class_map.encode(np.asarray([value]))[0]))
        self.fill = IGNORE
        if background:
            if BACKGROUND_VALUE not in class_map.values:
                raise LabelError(
                    f"a background class was asked for, but no class has value {BACKGROUND_VALUE}",
                    fix="build the classes with classes_from_values(values, background=True)",
                )
            self.fill = class_map.values.index(BACKGROUND_VALUE)
        self._shapes = [(geom, idx, geometry_bounds(geom)) for (geom, _), idx in zip(shapes, indices)]
        self.area = Window(0, 0, image_src.width, image_src.height)
        if not background and self._shapes:
            boxes = np.asarray([b for _, _, b in self._shapes])
            extent = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
            self.area = grid_window(image_src, extent)

    def read(self, window: Window) -> np.ndarray:
        """Class indices int64 [h,w] for ``window`` of the image grid."""
        h, w = int(window.height), int(window.width)
        left, bottom, right, top = window_bounds(window, self.transform)
        hits = [(g, i) for g, i, (x0, y0, x1, y1) in self._shapes if x0 <= right and x1 >= left and y0 <= top and y1 >= bottom]
        if not hits:
            return np.full((h, w), self.fill, dtype=np.int64)
        out = rasterize(hits, out_shape=(h, w), transform=window_transform(window, self.transform), fill=self.fill, dtype="int32")
        return out.astype(np.int64)

    def close(self) -> None:
        """Nothing to release; present for the LabelSource protocol."""


def read_vector_labels(path: str | os.PathLike, field: str, dst_crs: Any) -> Shapes:
    """Read polygons and their class attribute ``field`` from a vector file (first layer), reprojected to ``dst_crs``.

    Returns ``[(GeoJSON geometry dict, value)]`` with int or str values; features with an empty value or
    geometry are skipped. ``dst_crs`` is anything with ``to_wkt()`` (rasterio CRS) or a string such as 'EPSG:32633'.
    """
    from osgeo import ogr, osr

    p = Path(path)
    if not p.exists():
        raise InputError("the file does not exist", path=p, fix="check the path, or pick the file again")
    try:
        ds = ogr.Open(os.fspath(p))
    except RuntimeError:
        ds = None
    if ds is None or ds.GetLayerCount() == 0:
        raise InputError(
            "this is not a vector file GDAL can read", path=p, fix="pick a GeoPackage, shapefile or GeoJSON with polygons"
        )
    layer = ds.GetLayer(0)
    defn = layer.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if field not in fields:
        raise LabelError(
            f"the layer has no field {field!r}; its fields are {fields}",
            path=p,
            fix="pick the field that holds the class of each polygon",
        )
    src_srs = layer.GetSpatialRef()
    # A GeoPackage layer saved without a CRS reads back as "Undefined geographic/cartesian SRS".
    if src_srs is None or (src_srs.GetName() or "").lower().startswith("undefined"):
        raise LabelError("the layer has no CRS, so it cannot be placed on the image",
                         path=p, fix="assign the layer's CRS in QGIS (Layer Properties ▸ Source ▸ Set CRS) and save "
                                     "it again")
    dst_srs = osr.SpatialReference()
    dst_srs.SetFromUserInput(dst_crs.to_wkt() if hasattr(dst_crs, "to_wkt") else str(dst_crs))
    for srs in (src_srs, dst_srs):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(src_srs, dst_srs)
    is_real = defn.GetFieldDefn(fields.index(field)).GetType() == ogr.OFTReal
    shapes: Shapes = []
    for feature in layer:
        geom = feature.GetGeometryRef()
        if geom is None or geom.IsEmpty() or not feature.IsFieldSetAndNotNull(field):
            continue
        value = feature.GetField(field)
        if is_real:
            if value != round(value):
                raise LabelError(
                    f"feature {feature.GetFID()} has class {value:g} in {field!r}, not a whole number",
                    path=p,
                    fix="class values must be whole numbers or names",
                )
            value = int(value)
        elif isinstance(value, str):
            value = value.strip()
            if not value:
                continue
        geom = geom.Clone()
        with gdal_messages() as said:
            failed = geom.Transform(transform) != 0
        if failed:
            why = f" (PROJ: {said[0]})" if said else ""
            raise LabelError(
                f"feature {feature.GetFID()} could not be reprojected from the layer's CRS "
                f"({src_srs.GetName()}) to the image's{why}: the layer's CRS is probably wrong",
                path=p,
                fix="check the layer's CRS in QGIS (do the polygons appear over the image?); assign the right one, "
                    "or reproject the layer to the image's CRS",
            )
        shapes.append((json.loads(geom.ExportToJson()), value))
    if not shapes:
        raise LabelError(
            f"no feature has both a geometry and a value in {field!r}", path=p, fix="fill in the class field"
        )
    return shapes


def classes_from_values(
    values: Iterable[int | str],
    mapping: Mapping[str, int] | None = None,
    background: bool = False,
) -> ClassMap:
    """Classes for vector labels: integer values as they are, or names (strings).

    Names get values 1..K in sorted order, or the values in ``mapping`` ({name: value}) when given.
    ``background`` adds a class 'background' of value 0 for pixels outside every polygon.
    """
    found = set(values)
    if not found:
        raise LabelError("there are no label values", fix="give polygons with a class value")
    kinds = {isinstance(v, str) for v in found}
    if len(kinds) > 1:
        raise LabelError(
            f"label values mix names and numbers: {sorted(map(str, found))}", fix="use either names or whole numbers"
        )
    if kinds == {True}:
        if mapping is None:
            mapping = {name: i + 1 for i, name in enumerate(sorted(found))}
        missing = sorted(found - set(mapping))
        if missing:
            raise LabelError(f"class names {missing} are not in the given mapping", fix="add them to the mapping")
        pairs = sorted((int(v), str(n)) for n, v in mapping.items())
    else:
        pairs = [(int(v), f"class {int(v)}") for v in sorted(found)]
    if background:
        if any(v == BACKGROUND_VALUE for v, _ in pairs):
            raise LabelError(
                f"a background class needs value {BACKGROUND_VALUE}, but a class already has it",
                fix=f"renumber your classes so that none is {BACKGROUND_VALUE}, or leave background off",
            )
        pairs.insert(0, (BACKGROUND_VALUE, "background"))
    return ClassMap(ClassInfo(v, n, default_colour(i)) for i, (v, n) in enumerate(pairs))
