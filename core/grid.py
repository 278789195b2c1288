"""Do an image and its labels line up? CRS, resolution, pixel-grid alignment and overlap, in plain words."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.coords import disjoint_bounds
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as warp_points
from rasterio.warp import transform_bounds
from rasterio.windows import from_bounds

from .classes import label_raster_problem
from .errors import GridError, Warn, warn
from .fileio import atomic_path
from .raster import open_raster

ALIGNED = "aligned"
ALIGN_LABELS = "align_labels"
UNUSABLE = "unusable"

#: What to do with labels that need aligning, in any front's words (the CLI adds its own options).
ALIGN_FIX = ("align the labels to the image grid: training does it on the fly (nearest neighbour) when aligning "
             "labels is allowed (the QGIS train dialog allows it), or write an aligned copy once and train on that")

#: Mean Earth radius (IUGG), for ground distances between geographic coordinates.
EARTH_RADIUS_M = 6_371_008.8

#: Largest CRS displacement, in image pixels, that is taken as "the same grid" (with a warning).
TOLERANCE_PX = 0.5


@dataclass
class RasterSummary:
    """What a user checks first about one raster."""

    path: str
    bands: int
    dtypes: list[str]
    nodata: float | None
    crs: str
    resolution: tuple[float, float]
    size: tuple[int, int]  # width, height in pixels
    bounds: tuple[float, float, float, float]

    @classmethod
    def of(cls, src: rasterio.io.DatasetReader) -> RasterSummary:
        return cls(
            path=src.name,
            bands=src.count,
            dtypes=list(src.dtypes),
            nodata=src.nodata,
            crs=crs_name(src.crs),
            resolution=(float(src.res[0]), float(src.res[1])),
            size=(src.width, src.height),
            bounds=tuple(float(v) for v in src.bounds),
        )


@dataclass
class GridReport:
    """The verdict on an (image, labels) pair, with the numbers behind it and a summary in plain words."""

    image: RasterSummary
    labels: RasterSummary
    verdict: str  # ALIGNED | ALIGN_LABELS | UNUSABLE
    same_grid: bool  # labels can be read pixel for pixel on the image grid (within tolerance)
    offset_m: float  # largest displacement between the two CRSs over the overlap, metres (0 when CRSs agree)
    offset_px: float  # the same, in image pixels
    overlap_px: tuple[int, int]  # overlap width, height in image pixels
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fix: str = ""
    culprit: str = ""  # the file the first problem is about (image or labels); the labels' when not said

    @property
    def usable(self) -> bool:
        """True when training can go on as is (warnings aside)."""
        return self.verdict == ALIGNED

    @property
    def summary(self) -> str:
        """A few lines a GIS analyst can read."""
        return self.summary_with(self.fix)

    def summary_with(self, fix: str) -> str:
        """The summary with a front's own fix (the train dialog, which aligns on the fly, says so)."""
        head = {
            ALIGNED: "Image and labels line up: ready to train.",
            ALIGN_LABELS: "Image and labels do not line up yet: the labels must be aligned to the image grid.",
            UNUSABLE: "Image and labels cannot be used together.",
        }[self.verdict]
        lines = [head, *[f"- {p}" for p in self.problems], *[f"- {n}" for n in self.notes]]
        if fix:
            lines.append(f"Fix: {fix}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; an offset that is no offset (CRSs in different units) is null."""
        data = asdict(self)
        for key in ("offset_m", "offset_px"):
            data[key] = data[key] if math.isfinite(data[key]) else None
        return {**data, "usable": self.usable, "summary": self.summary}


#: Names a WKT gives a CRS that name nothing.
_NO_NAMES = {"", "unnamed", "unknown", "undefined", "custom", "user-defined"}


def crs_name(crs: CRS | None) -> str:
    """'EPSG:32119' when the CRS has a code, else the name in its WKT ('“Lambert NC custom” (no EPSG code)'),
    else 'a custom CRS (no EPSG code)'; 'none' when missing."""
    if crs is None:
        return "none"
    epsg = crs.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    name = wkt_name(crs.to_wkt())
    return f"“{name}” (no EPSG code)" if name else "a custom CRS (no EPSG code)"


def wkt_name(wkt: str) -> str:
    """The name a WKT gives its CRS (PROJCS / PROJCRS / GEOGCS… first quoted string), '' when it names nothing."""
    found = re.match(r'\s*\w+\s*\[\s*"([^"]*)"', wkt or "")
    name = found.group(1).strip() if found else ""
    return "" if name.lower() in _NO_NAMES else name


def ground_offset_m(src_crs: CRS, dst_crs: CRS, bounds: tuple[float, float, float, float], samples: int = 11) -> float:
    """:func:`crs_offset` for geographic CRSs, in metres on the ground (great-circle distance on the mean Earth
    sphere, within 0.5 % of the ellipsoid), since a degree of longitude shrinks away from the equator."""
    xs, ys = np.meshgrid(np.linspace(bounds[0], bounds[2], samples), np.linspace(bounds[1], bounds[3], samples))
    tx, ty = warp_points(src_crs, dst_crs, xs.ravel(), ys.ravel())
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (xs.ravel(), ys.ravel(), tx, ty))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return float((2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))).max())


def crs_offset(src_crs: CRS, dst_crs: CRS, bounds: tuple[float, float, float, float], samples: int = 11) -> float:
    """Largest distance (dst CRS units) between points read in ``src_crs`` and the same numbers read in ``dst_crs``.

    This is how far a pixel moves if a raster tagged ``src_crs`` is taken to be in ``dst_crs`` unchanged,
    measured on a ``samples``×``samples`` lattice over ``bounds`` (given in ``src_crs``).
    """
    xs, ys = np.meshgrid(np.linspace(bounds[0], bounds[2], samples), np.linspace(bounds[1], bounds[3], samples))
    tx, ty = warp_points(src_crs, dst_crs, xs.ravel(), ys.ravel())
    return float(np.hypot(np.asarray(tx) - xs.ravel(), np.asarray(ty) - ys.ravel()).max())


def check_grid(image: str | os.PathLike, labels: str | os.PathLike, tile_size: int = 256) -> GridReport:
    """Compare an image raster with a label raster and give a verdict.

    ``aligned``: labels can be read on the image grid (a CRS mismatch below half a pixel included, with a note);
    ``align_labels``: they overlap but need warping onto the image grid (different CRS, resolution or grid);
    ``unusable``: no overlap, or an overlap / raster smaller than one tile.
    """
    with open_raster(image) as img, open_raster(labels) as lbl:
        return _compare(img, lbl, tile_size)


def _compare(img: rasterio.io.DatasetReader, lbl: rasterio.io.DatasetReader, tile: int) -> GridReport:
    problems: list[str] = []
    notes: list[str] = []
    fix = ""
    swapped = label_raster_problem(lbl)
    if swapped:
        return _report(img, lbl, UNUSABLE, False, 0.0, (0, 0), [swapped[0].upper() + swapped[1:]], [],
                       "swap them: the image is the picture (several bands), the labels the single-band raster "
                       "of class values")
    if img.crs is None or lbl.crs is None:
        missing = img.name if img.crs is None else lbl.name
        which = "image" if img.crs is None else "labels"
        return _report(img, lbl, UNUSABLE, False, 0.0, (0, 0),
                       [f"The {which} {Path(missing).name} has no CRS (no georeferencing)."], [],
                       f"assign the right CRS to {missing} (QGIS: Layer Properties ▸ Source ▸ Set CRS, or export it "
                       "as a GeoTIFF with its CRS) and save it", culprit=missing)
    pixel = min(abs(img.res[0]), abs(img.res[1]))
    label_bounds = transform_bounds(lbl.crs, img.crs, *lbl.bounds) if lbl.crs != img.crs else tuple(lbl.bounds)
    if disjoint_bounds(img.bounds, label_bounds):
        return _report(img, lbl, UNUSABLE, False, 0.0, (0, 0),
                       ["The labels do not overlap the image at all."], [],
                       "check that both layers show the same place; if the labels appear far away, one of them has "
                       "the wrong CRS assigned")
    inter = (max(img.bounds[0], label_bounds[0]), max(img.bounds[1], label_bounds[1]),
             min(img.bounds[2], label_bounds[2]), min(img.bounds[3], label_bounds[3]))
    rotated = not (img.transform.is_rectilinear and lbl.transform.is_rectilinear)
    if rotated:  # bounds are envelopes of a turned footprint: measure the overlap in image pixels instead
        overlap = _overlap_px(img, lbl)
    else:
        win = from_bounds(*inter, transform=img.transform)
        overlap = (int(round(win.width)), int(round(win.height)))

    offset_units = offset_m = 0.0
    comparable = same_units(lbl.crs, img.crs)
    if lbl.crs != img.crs and comparable:
        offset_units = crs_offset(lbl.crs, img.crs, tuple(lbl.bounds))
        offset_m = (ground_offset_m(lbl.crs, img.crs, tuple(lbl.bounds)) if img.crs.is_geographic
                    else offset_units * img.crs.linear_units_factor[1])
    elif lbl.crs != img.crs:  # degrees read as metres (or feet as metres) is no offset, but a reprojection
        offset_units = offset_m = math.inf
    offset_px = offset_units / pixel

    same_res = np.allclose(img.res, lbl.res, rtol=1e-6)
    it, lt = img.transform, lbl.transform
    # Same pixel axes (size, rotation, shear), and the labels' corner on a corner of the image's pixels.
    same_axes = np.allclose([it.a, it.b, it.d, it.e], [lt.a, lt.b, lt.d, lt.e], rtol=1e-6, atol=pixel * 1e-9)
    shift = ~it * (lt.c, lt.f)
    on_lattice = same_res and same_axes and all(abs(v - round(v)) < 1e-3 for v in shift)
    same_grid = on_lattice and offset_px <= TOLERANCE_PX

    if lbl.crs != img.crs and not comparable:
        problems.append(f"The CRSs differ: image {crs_name(img.crs)} (in {units_name(img.crs)}), labels "
                        f"{crs_name(lbl.crs)} (in {units_name(lbl.crs)}); the labels must be reprojected onto the "
                        "image's grid (nearest neighbour), which aligning them does.")
    elif lbl.crs != img.crs:
        line = (f"The CRSs differ: image {crs_name(img.crs)}, labels {crs_name(lbl.crs)}; over the overlap the "
                f"positions differ by at most {_distance(offset_m)} ({offset_px:.2f} image pixels).")
        (notes if offset_px <= TOLERANCE_PX else problems).append(line)
        if offset_px <= TOLERANCE_PX and on_lattice:
            notes.append("That is well under half a pixel, so the labels are used on the image grid as they are.")
    if not same_res:
        problems.append(f"The resolutions differ: image {_res(img)}, labels {_res(lbl)}.")
    elif not same_axes:
        problems.append(f"The pixel grids point different ways: the image grid is {_orientation(it)}, the labels' "
                        f"grid {_orientation(lt)}, so pixel for pixel they do not line up; the labels must be "
                        "warped onto the image grid.")
    elif not on_lattice:
        problems.append(f"The pixel grids are shifted by a fraction of a pixel ({shift[0]:.2f}, {shift[1]:.2f} px).")
    notes.append(f"Overlap: {overlap[0]} × {overlap[1]} image pixels; tile size {tile}.")
    culprit = ""

    if min(img.width, img.height) < tile:
        problems.append(f"The image ({img.width} × {img.height} pixels) is smaller than one tile ({tile} pixels).")
        fix = f"choose a tile size of at most {min(img.width, img.height) // 32 * 32 or 32} pixels"
        if min(img.width, img.height) < 32:
            fix = ("use a larger image: geofm's smallest tile is 32 pixels, and this image is "
                   f"{img.width} × {img.height}")
        verdict = UNUSABLE
        culprit = img.name
    elif min(overlap) < tile:
        problems.append(f"The overlap ({overlap[0]} × {overlap[1]} pixels) is smaller than one tile ({tile} pixels).")
        fix = "choose a smaller tile size, or labels that cover more of the image"
        verdict = UNUSABLE
    elif same_grid:
        verdict = ALIGNED
    else:
        verdict = ALIGN_LABELS
        fix = ALIGN_FIX
    return _report(img, lbl, verdict, same_grid, offset_m, overlap, problems, notes, fix, offset_px, culprit)


def _distance(metres: float) -> str:
    """'0.42 m', '35.1 m', '2.3 km': a ground distance as an analyst reads it."""
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{metres:.1f} m" if metres >= 10 else f"{metres:.2f} m"


def _orientation(t: Any) -> str:
    """'north-up', 'rotated by 30.0°' or 'rotated or sheared' for a geotransform."""
    if t.is_rectilinear:
        return "north-up"
    angle = math.degrees(math.atan2(t.d, t.a))
    if math.isclose(abs(t.a * t.b + t.d * t.e), 0.0, abs_tol=1e-9 * (t.a**2 + t.d**2)):  # axes at right angles
        return f"rotated by {angle:.1f}°"
    return f"sheared (x axis at {angle:.1f}°)"


def _overlap_px(img: rasterio.io.DatasetReader, lbl: rasterio.io.DatasetReader) -> tuple[int, int]:
    """Width and height, in image pixels, of the part of the image the labels' footprint covers (its envelope in
    the image's pixel space) — right for rotated and sheared grids, where map-space bounds are not."""
    cols = [0, lbl.width, lbl.width, 0]
    rows = [0, 0, lbl.height, lbl.height]
    xs, ys = zip(*(lbl.transform * (c, r) for c, r in zip(cols, rows)))
    if lbl.crs != img.crs:
        xs, ys = warp_points(lbl.crs, img.crs, list(xs), list(ys))
    px = [~img.transform * (x, y) for x, y in zip(xs, ys)]
    c0, c1 = max(0.0, min(p[0] for p in px)), min(float(img.width), max(p[0] for p in px))
    r0, r1 = max(0.0, min(p[1] for p in px)), min(float(img.height), max(p[1] for p in px))
    return max(0, int(round(c1 - c0))), max(0, int(round(r1 - r0)))


def _res(src: rasterio.io.DatasetReader) -> str:
    """'28.5 × 28.5 metres'; in degrees also roughly on the ground: '0.00025 × 0.00025 degrees (about 28 m)'."""
    text = f"{src.res[0]:g} × {src.res[1]:g} {units_name(src.crs) if src.crs else ''}".strip()
    if src.crs is not None and src.crs.is_geographic:
        lat = math.radians((src.bounds[1] + src.bounds[3]) / 2)
        text += f" (about {_distance(math.radians(src.res[0]) * EARTH_RADIUS_M * math.cos(lat))} across)"
    return text


def units_name(crs: CRS | None) -> str:
    """The unit of a CRS's coordinates in words: 'degrees' for a geographic CRS, else its linear unit
    ('metre', 'US survey foot'); 'unknown units' when the CRS does not say."""
    if crs is None:
        return "unknown units"
    if crs.is_geographic:
        return "degrees"
    unit = crs.linear_units
    plural = {"metre": "metres", "meter": "metres", "foot": "feet", "US survey foot": "US survey feet"}
    return plural.get(unit, unit) if unit and unit != "unknown" else "unknown units"


def same_units(a: CRS | None, b: CRS | None) -> bool:
    """Whether coordinates of ``a`` and ``b`` are in one unit (both degrees, or the same length), so that reading
    one's numbers in the other is a small shift rather than nonsense."""
    if a is None or b is None or a == b:
        return True
    if a.is_geographic or b.is_geographic:
        return a.is_geographic and b.is_geographic
    try:
        return math.isclose(a.linear_units_factor[1], b.linear_units_factor[1])
    except Exception:  # noqa: BLE001 - a CRS without a linear unit: treat as not comparable
        return False


def _report(img, lbl, verdict, same_grid, offset_m, overlap, problems, notes, fix, offset_px=0.0,
            culprit="") -> GridReport:
    return GridReport(RasterSummary.of(img), RasterSummary.of(lbl), verdict, same_grid, offset_m,
                      offset_px, overlap, problems, notes, fix, culprit or lbl.name)


def require_usable(report: GridReport, align_labels: bool = False, warn_to: Warn | None = None) -> None:
    """Raise :class:`GridError` unless the pair can be trained on; warn about a tolerated CRS mismatch.

    With ``align_labels`` an ``align_labels`` verdict is accepted: the labels will be warped on the fly.
    The warning goes to ``warn_to`` (a job's collector, which it yields as a WarningEvent) when given, else it is
    a :class:`~geofm.core.errors.GeoFMWarning` (see :func:`~geofm.core.errors.warn`).
    """
    if report.verdict == UNUSABLE or (report.verdict == ALIGN_LABELS and not align_labels):
        raise GridError(" ".join(report.problems) or "image and labels do not line up",
                        path=report.culprit or report.labels.path, fix=report.fix)
    if report.image.crs != report.labels.crs and report.same_grid and report.offset_px >= 0.01:  # else: no news
        warn(f"{report.labels.path}: CRS {report.labels.crs} differs from the image's {report.image.crs} "
             f"by {report.offset_m:.2f} m ({report.offset_px:.2f} px); used as is.", warn_to)


def write_aligned_labels(labels: str | os.PathLike, image: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Write ``labels`` warped onto ``image``'s grid (nearest neighbour) to ``output``, block by block."""
    with open_raster(image) as img, open_raster(labels) as lbl:
        if Path(output).resolve() in (Path(img.name).resolve(), Path(lbl.name).resolve()):
            raise GridError("the output would overwrite an input", path=output, fix="choose a new file name")
        nodata = lbl.nodata if lbl.nodata is not None else _default_nodata(lbl.dtypes[0])
        with WarpedVRT(lbl, crs=img.crs, transform=img.transform, width=img.width, height=img.height,
                       resampling=Resampling.nearest, nodata=nodata) as vrt:
            profile = {"driver": "GTiff", "width": img.width, "height": img.height, "count": lbl.count,
                       "dtype": lbl.dtypes[0], "crs": img.crs, "transform": img.transform, "nodata": nodata,
                       "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
            with atomic_path(output) as tmp:
                with rasterio.open(tmp, "w", **profile) as dst:
                    for _, window in dst.block_windows(1):
                        dst.write(vrt.read(window=window), window=window)
                    try:
                        dst.write_colormap(1, lbl.colormap(1))
                    except ValueError:
                        pass  # no colour table to carry over
    return Path(output)


def _default_nodata(dtype: str) -> float:
    info = np.iinfo(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else None
    return float(info.max) if info is not None else math.nan
