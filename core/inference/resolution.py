"""The raster as the model should read it: as it is, or resampled to the training pixel size."""

from __future__ import annotations

import math
from typing import Union

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.vrt import WarpedVRT

RESOLUTION_TOLERANCE = 0.25  # warn when the raster's pixel size differs from the training one by more

Reader = Union[rasterio.io.DatasetReader, WarpedVRT]  # noqa: UP007 - evaluated at run time (Python 3.9)


def model_reader(
    src: rasterio.io.DatasetReader,
    resolution: tuple[float, float] | None,
    crs: str | None,
    resample: bool,
) -> tuple[Reader, list[str]]:
    """The dataset to read (``src``, or a WarpedVRT at the training ``resolution`` when ``resample``) and warnings
    for the user. ``resolution`` and ``crs`` are the model's training pixel size (x, y) and CRS, None if unknown.
    The caller closes a returned WarpedVRT."""
    if resolution is None:
        return src, []
    if not same_units(src.crs, crs):
        return src, [
            f"{src.name}: the raster's CRS and the model's training CRS use different units, so their resolutions "
            "cannot be compared; check that the pixel size matches the training data."
        ]
    (rx, ry), (tx, ty) = (abs(src.res[0]), abs(src.res[1])), resolution
    worst = max(abs(rx / tx - 1), abs(ry / ty - 1))
    if worst <= RESOLUTION_TOLERANCE:
        return src, []
    if not resample:
        return src, [
            f"{src.name}: pixels are {rx:g} × {ry:g} but the model was trained on {tx:g} × {ty:g} "
            f"({worst:.0%} apart); results may be poor. Fix: resample to the training resolution "
            "(resample_to_training / --resample)."
        ]
    left, bottom, right, top = src.bounds
    width, height = max(1, round((right - left) / tx)), max(1, round((top - bottom) / ty))
    vrt = WarpedVRT(src, crs=src.crs, transform=Affine(tx, 0, left, 0, -ty, top), width=width, height=height,
                    resampling=Resampling.bilinear)
    return vrt, [f"{src.name}: read at the training resolution {tx:g} × {ty:g} (from {rx:g} × {ry:g}), bilinear."]


def same_units(raster_crs: CRS | None, training_crs: str | None) -> bool:
    """Whether pixel sizes in the two CRSs are comparable (same angular or linear unit); unknown counts as same."""
    if raster_crs is None or not training_crs:
        return True
    try:
        other = CRS.from_user_input(training_crs)
        if raster_crs.is_geographic or other.is_geographic:
            return raster_crs.is_geographic == other.is_geographic
        return math.isclose(raster_crs.linear_units_factor[1], other.linear_units_factor[1])
    except (CRSError, ValueError):
        return True
