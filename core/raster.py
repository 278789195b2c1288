"""Opening rasters with clear errors, and reading windows as float32 data plus a validity mask."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from .config import VECTOR_SUFFIXES
from .errors import InputError, Warn, warn
from .fileio import gdal_messages
from .normalise import EXTREME


def open_raster(path: str | os.PathLike) -> rasterio.io.DatasetReader:
    """Open ``path`` for reading; a missing, corrupt or non-raster file raises :class:`InputError`."""
    p = Path(path)
    if not p.exists():
        raise InputError("the file does not exist", path=p, fix="check the path, or pick the file again")
    if p.is_dir():
        raise InputError("this is a folder, not a raster file", path=p, fix="pick a GeoTIFF or other raster file")
    if not os.access(p, os.R_OK):
        raise InputError("the file is not readable", path=p, fix="check the file's permissions")
    try:
        src = rasterio.open(p)
    except RasterioIOError as err:
        if p.suffix.lower() in VECTOR_SUFFIXES:
            raise InputError(
                "this is a vector file (features), not a raster",
                path=p,
                fix="to use it as labels, pass the attribute that holds each feature's class (--label-field); "
                    "otherwise pick a raster file",
            ) from err
        raise InputError(
            f"this is not a raster GDAL can read ({err})",
            path=p,
            fix="pick a GeoTIFF (or another GDAL raster format); if it is one, the file may be truncated — export it again",
        ) from err
    if src.count == 0:
        src.close()
        raise InputError("the raster has no bands", path=p, fix="pick a raster with at least one band")
    complex_types = sorted({d for d in src.dtypes if np.dtype(d).kind == "c"})
    if complex_types:
        src.close()
        raise InputError(
            f"the raster holds complex numbers ({', '.join(complex_types)}, e.g. SAR single-look complex data); "
            "geofm reads real values only",
            path=p,
            fix="convert it to real bands first, e.g. amplitude or intensity (QGIS Raster Calculator, or "
                "gdal_translate with a VRT pixel function such as 'mod'), and use that raster",
        )
    try:  # a truncated file opens, then fails on its last block: find out now, not mid-training
        with gdal_messages():  # GDAL's own lines would repeat what the message below says
            src.read(window=Window(src.width - 1, src.height - 1, 1, 1))
    except RasterioIOError as err:
        src.close()
        raise InputError(f"the file is damaged or truncated ({err})", path=p,
                         fix="copy or export the raster again; if it is being written, wait until it is done") from err
    return src


def has_geotransform(src: rasterio.io.DatasetReader) -> bool:
    """Whether pixels have places: a real geotransform (GDAL reports the identity, or its flipped counterpart, when
    the file has none, e.g. a plain PNG or JPEG)."""
    t = src.transform
    return not (t.almost_equals(Affine.identity()) or t.almost_equals(Affine(1, 0, 0, 0, -1, 0)))


def require_geotransform(path: str | os.PathLike, purpose: str, fix: str) -> None:
    """Raise :class:`InputError` naming ``path`` when the raster has no geotransform, for a step (``purpose``, e.g.
    'resampled to the training resolution') that needs pixel sizes in map units. Call it before any work."""
    with open_raster(path) as src:
        if has_geotransform(src):
            return
        raise InputError(f"the raster has no georeferencing (no geotransform), so it cannot be {purpose}", path=path,
                         fix=fix)


def band_nodata(src: rasterio.io.DatasetReader) -> list[float | None]:
    """The nodata value of each band (GDAL keeps one per band; most files share one)."""
    return [src.nodatavals[i] for i in range(src.count)]


def valid_mask(data: np.ndarray, nodata: list[float | None]) -> np.ndarray:
    """True where no band is nodata, NaN, infinite or of magnitude :data:`normalise.EXTREME` or more (an unmasked
    fill value such as 3.4e38, which would flatten the band once normalised). ``data`` is [C,h,w]."""
    valid = np.isfinite(data).all(axis=0)
    if data.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            valid &= (np.abs(data) < EXTREME).all(axis=0)
    for band, nd in enumerate(nodata):
        if nd is not None and not np.isnan(nd):
            valid &= data[band] != nd
    return valid


def is_blank(path: str | os.PathLike) -> bool:
    """True when a raster holds nothing: every pixel is nodata, or zero in every band (a web layer exported
    offline, or outside its coverage, comes out so). Read block by block; stops at the first real pixel."""
    with open_raster(path) as src:
        nodata = band_nodata(src)
        for _, window in src.block_windows(1):
            data = src.read(window=window, masked=False)
            if (valid_mask(data, nodata) & (data != 0).any(axis=0)).any():
                return False
    return True


#: Open datasets already warned about (once per dataset, not once per window).
_WARNED: weakref.WeakSet = weakref.WeakSet()


def _warn_extremes(src: rasterio.io.DatasetReader, raw: np.ndarray, nodata: list[float | None],
                   warn_to: Warn | None = None) -> None:
    """Warn (once per open dataset) about bands with pixels of magnitude ≥ EXTREME that are not declared nodata."""
    bands = []
    for b in range(raw.shape[0]):
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(raw[b]) & (np.abs(raw[b]) >= EXTREME)
        if nodata[b] is not None and not np.isnan(nodata[b]):
            bad &= raw[b] != nodata[b]
        if bad.any():
            bands.append((b + 1, float(raw[b][bad][0])))
    if bands:
        _WARNED.add(src)
        listed = ", ".join(f"band {b} (e.g. {v:g})" for b, v in bands)
        warn(f"{src.name}: {listed} holds values of magnitude {EXTREME:g} or more that are not declared nodata: "
             "they are treated as nodata (left out of the statistics, neither trained on nor predicted). If they are "
             "fill values, set the image's nodata value (QGIS: Layer Properties ▸ Transparency)", warn_to, stacklevel=3)


def read_window(
    src: rasterio.io.DatasetReader, window: Window, boundless: bool = False, warn_to: Warn | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` of every band as float32 [C,h,w] and its validity mask [h,w].

    With ``boundless`` pixels outside the raster come back invalid.
    """
    try:
        with gdal_messages():  # said again in the InputError below, not printed beside it
            raw = src.read(window=window, boundless=boundless, masked=False)
    except RasterioIOError as err:
        raise InputError(
            f"reading pixels failed ({err})", path=src.name, fix="the file may be damaged: export it again"
        ) from err
    nodata = band_nodata(src)
    valid = valid_mask(raw, nodata)
    if raw.dtype.kind == "f" and src not in _WARNED:
        _warn_extremes(src, raw, nodata, warn_to)
    if boundless:
        inside = np.zeros(raw.shape[1:], dtype=bool)
        col0, row0 = int(window.col_off), int(window.row_off)
        r0, c0 = max(0, -row0), max(0, -col0)
        r1 = min(raw.shape[1], src.height - row0)
        c1 = min(raw.shape[2], src.width - col0)
        if r1 > r0 and c1 > c0:
            inside[r0:r1, c0:c1] = True
        valid &= inside
    return raw.astype(np.float32, copy=False), valid
