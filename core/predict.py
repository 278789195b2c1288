"""Prediction over rasters of any size: blended sliding windows, streamed block by block to GeoTIFF.

Windows of the package's tile size, overlapping, run through the model one strip (row of windows) at a time in
batches. Their softmax probabilities are weighted by a window that falls toward the tile edges and summed in a
buffer holding only the rows the current strip touches; rows no later window touches are finished, turned into
class values (and optionally probabilities / confidence) and written out in whole rows of GeoTIFF blocks.
Memory is bounded by (tile + block) rows × the extent's width, whatever the raster's height.

torch is imported only for a .geofm package: an ONNX model (:class:`.onnx_model.OnnxModel`, a ``.onnx`` path) runs
with onnxruntime alone, its ``probabilities`` taking the place of normalise + model + softmax.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.features import bounds as geometry_bounds
from rasterio.features import geometry_mask
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window, from_bounds

from .config import known_settings
from .errors import ConfigError, PredictionError
from .events import CancelledEvent, Event, FinishedEvent, ProgressEvent, WarningEvent
from .fileio import atomic_path
from .normalise import normalise
from .onnx_model import OnnxModel, is_onnx
from .raster import open_raster, read_window

if TYPE_CHECKING:
    import torch

    from .package import ModelPackage

BLOCK = 256  # output GeoTIFF tile size (px); rows are written in whole rows of blocks
EDGE_FLOOR = 1e-3  # weight of a window's outermost pixels, relative to its centre
RESOLUTION_TOLERANCE = 0.25  # warn when the raster's pixel size differs from the training one by more
PROBABILITY_NODATA = -1.0
FINISH_ROWS = 32  # finished rows converted to outputs at a time (bounds temporary arrays)


Reader = rasterio.io.DatasetReader | WarpedVRT


class CancelFlag(Protocol):
    """What ``cancel`` must offer; a ``threading.Event`` does."""

    def is_set(self) -> bool: ...


@dataclass
class PredictConfig:
    """Settings of one prediction; the dialog, the Processing algorithm and the CLI build the same object.

    ``overlap`` is the share of a tile its neighbour repeats (0 ≤ overlap ≤ 0.9). ``probabilities`` is the path of
    an optional float32 GeoTIFF with one band per class; ``confidence`` writes the highest class probability to
    ``<output stem>_confidence.tif``. The extent is the whole raster, ``bbox`` (minx, miny, maxx, maxy) in
    ``bbox_crs``, or ``polygon`` (a GeoJSON geometry, Feature or FeatureCollection) in ``polygon_crs``; a CRS of
    None means the raster's own. ``resample_to_training`` reads the raster at the model's training resolution when
    the two differ by more than 25 %.
    """

    overlap: float = 0.5
    batch_size: int = 8
    device: str = "auto"
    probabilities: str | None = None
    confidence: bool = False
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: str | None = None
    polygon: dict[str, Any] | None = None
    polygon_crs: str | None = None
    resample_to_training: bool = False

    def validate(self) -> PredictConfig:
        """Raise :class:`ConfigError` for anything out of range; return self so calls chain."""
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int | float) or not 0 <= self.overlap <= 0.9:
            raise ConfigError(f"overlap {self.overlap!r} must lie between 0 and 0.9", fix="use 0.5 (the default)")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch size {self.batch_size!r} must be a whole number ≥ 1", fix="use 8, or less on a small GPU")
        if self.bbox is not None:
            if len(self.bbox) != 4 or not all(math.isfinite(float(v)) for v in self.bbox):
                raise ConfigError(f"bounding box {self.bbox!r} needs four numbers", fix="give minx miny maxx maxy")
            if not (self.bbox[0] < self.bbox[2] and self.bbox[1] < self.bbox[3]):
                raise ConfigError(f"bounding box {self.bbox!r} is empty or inverted", fix="give minx miny maxx maxy")
        if self.bbox is not None and self.polygon is not None:
            raise ConfigError("both a bounding box and a polygon were given", fix="give one extent, not both")
        if self.polygon is not None:
            _geometries(self.polygon)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bbox"] = list(self.bbox) if self.bbox is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PredictConfig:
        values = known_settings(cls, data)
        if values.get("bbox") is not None:
            values["bbox"] = tuple(float(v) for v in values["bbox"])
        return cls(**values)


def confidence_path(output: str | os.PathLike) -> Path:
    """Where ``confidence=True`` writes the confidence band: ``<stem>_confidence.tif`` beside ``output``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_confidence{output.suffix or '.tif'}")


def predict(
    package: ModelPackage | OnnxModel | str | os.PathLike,
    raster: str | os.PathLike,
    output: str | os.PathLike,
    config: PredictConfig | None = None,
    cancel: CancelFlag | None = None,
) -> Iterator[Event]:
    """Predict ``raster`` with ``package`` (a loaded package or ONNX model, or a .geofm / .onnx path) into the
    class-map GeoTIFF ``output``.

    The config, the device and the output paths are checked now (ConfigError / PredictionError); the rest when the
    returned generator runs. It yields WarningEvent, ProgressEvent (windows done of total) and ends with a
    FinishedEvent (``summary``: windows, seconds, pixel counts per class, output paths) or, when ``cancel.is_set()``
    between batches, a CancelledEvent with no output left behind.
    """
    config = (config or PredictConfig()).validate()
    raster = Path(raster)
    targets = _targets(raster, Path(output), config)
    device = config.device if is_onnx(package) else _torch_device(config.device, package)
    return _predict(package, raster, targets, config, device, cancel)


def weight_window(tile: int, floor: float = EDGE_FLOOR) -> np.ndarray:
    """1-D blending weights [tile]: a Hann bump sin²(π(i+½)/tile), lifted to ``floor`` at the edges."""
    hann = np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2
    return (floor + (1.0 - floor) * hann).astype(np.float32)


def window_starts(offset: int, length: int, full: int, tile: int, stride: int) -> list[int]:
    """Window starts (raster px) covering pixels [offset, offset + length) of an axis ``full`` px long.

    Every ``stride`` px, the last one shifted inward to end at the extent's edge. An extent shorter than a tile
    gets one window centred on it, kept inside the raster when the raster is long enough.
    """
    if length <= tile:
        return [min(max(offset + (length - tile) // 2, 0), max(full - tile, 0))]
    return [*range(offset, offset + length - tile, stride), offset + length - tile]


def _torch_device(name: str, package: Any) -> torch.device:
    """The torch device for a .geofm package; a ConfigError in plain words where torch is missing."""
    try:
        from .device import resolve_device
    except ImportError as err:
        raise ConfigError(f"a .geofm model package needs torch, which cannot be imported here ({err})",
                          path=package if isinstance(package, str | os.PathLike) else None,
                          fix="install torch (see README), or export the model to ONNX where torch is installed "
                              "(geofm export) and predict with the .onnx file") from err
    return resolve_device(name)


def _load(package: Any, device: torch.device | str) -> ModelPackage | OnnxModel:
    """The model to run: ``package`` itself when loaded, else the .onnx or .geofm file it names, ready on ``device``."""
    if isinstance(package, str | os.PathLike):
        if is_onnx(package):
            return OnnxModel.load(package, str(device))
        from .package import load_package

        package = load_package(package, device)
    if not is_onnx(package):
        package.model.to(device).eval()
    return package


def _out_of_memory() -> tuple[type[BaseException], ...]:
    """torch's out-of-memory error where torch is loaded (nothing to catch where it is not)."""
    torch = sys.modules.get("torch")
    return (torch.cuda.OutOfMemoryError,) if torch is not None else ()


def _predict(
    package: ModelPackage | OnnxModel | str | os.PathLike,
    raster: Path,
    targets: dict[str, Path],
    config: PredictConfig,
    device: torch.device | str,
    cancel: CancelFlag | None,
) -> Iterator[Event]:
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            src = stack.enter_context(open_raster(raster))
            pkg = _load(package, device)
            if is_onnx(pkg):
                pkg.check_bands(src.count, raster)
                device = f"onnxruntime ({pkg.runtime})"
            else:
                from .package import check_bands

                check_bands(pkg, src.count, raster)
            reader, notes = _reader(src, pkg, config)
            if reader is not src:
                stack.enter_context(reader)
            extent, shapes = _extent(reader, config, raster)
            for note in notes:
                yield WarningEvent(note)
            job = _Job(pkg, reader, extent, shapes, config, device)
            outputs = _open_outputs(stack, targets, reader, extent, pkg)
            yield ProgressEvent(0, job.total, f"predicting {job.total} windows on {getattr(device, 'type', device)}")
            yield from job.run(outputs, cancel)
            for out in outputs.values():
                out.flush()
            if job.valid_pixels == 0:
                yield WarningEvent(
                    f"{raster}: every pixel of the extent is nodata (or outside the polygon), so the output is all "
                    "nodata. Fix: check the raster's nodata value and the extent."
                )
    except _Stop:
        yield CancelledEvent("", "prediction cancelled; no output was written")
        return
    except OSError as err:
        raise _write_error(err, targets["classes"]) from err
    except _out_of_memory() as err:
        raise PredictionError(
            "the device ran out of memory", path=raster, fix=f"use a batch size below {config.batch_size}, or --device cpu"
        ) from err
    seconds = time.perf_counter() - started
    summary = {
        "windows": job.total,
        "windows_run": job.run_count,
        "seconds": round(seconds, 3),
        "windows_per_s": round(job.total / seconds, 3) if seconds > 0 else None,
        "device": str(device),
        "width": int(extent.width),
        "height": int(extent.height),
        "valid_pixels": job.valid_pixels,
        "class_pixels": dict(zip(pkg.classes.names, job.class_pixels.tolist(), strict=True)),
        "outputs": {kind: str(path) for kind, path in targets.items()},
    }
    yield FinishedEvent(str(targets["classes"]), summary)


class _Stop(Exception):
    """Raised inside the output context when the user cancels, so the temporary files are removed."""


def _targets(raster: Path, output: Path, config: PredictConfig) -> dict[str, Path]:
    """The output files by kind ('classes', 'probabilities', 'confidence'), checked to be new and writable."""
    targets = {"classes": output}
    if config.probabilities:
        targets["probabilities"] = Path(config.probabilities)
    if config.confidence:
        targets["confidence"] = confidence_path(output)
    seen: dict[Path, str] = {}
    for kind, path in targets.items():
        where = path.resolve()
        if where == raster.resolve():
            raise PredictionError(
                f"the {kind} output is the input raster itself", path=path, fix="write the prediction to a new file"
            )
        if where in seen:
            raise PredictionError(f"the {kind} and {seen[where]} outputs are the same file", path=path,
                                  fix="give each output its own file name")
        seen[where] = kind
        if path.is_dir():
            raise PredictionError(f"the {kind} output is a folder", path=path, fix="give a file name ending in .tif")
        folder = path.parent
        if not folder.is_dir():
            raise PredictionError("the output folder does not exist", path=folder, fix="create it, or pick another")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PredictionError("the output folder is not writable", path=folder, fix="pick a folder you can write to")
    return targets


def _reader(src: rasterio.io.DatasetReader, pkg: ModelPackage, config: PredictConfig) -> tuple[Reader, list[str]]:
    """The dataset to read (``src``, or a WarpedVRT at the training resolution) and warnings for the user."""
    if pkg.resolution is None:
        return src, []
    if not _same_units(src.crs, pkg.crs):
        return src, [
            f"{src.name}: the raster's CRS and the model's training CRS use different units, so their resolutions "
            "cannot be compared; check that the pixel size matches the training data."
        ]
    (rx, ry), (tx, ty) = (abs(src.res[0]), abs(src.res[1])), pkg.resolution
    worst = max(abs(rx / tx - 1), abs(ry / ty - 1))
    if worst <= RESOLUTION_TOLERANCE:
        return src, []
    if not config.resample_to_training:
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


def _same_units(raster_crs: CRS | None, training_crs: str | None) -> bool:
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


def _geometries(polygon: dict[str, Any]) -> list[dict[str, Any]]:
    """The geometries of a GeoJSON geometry, Feature or FeatureCollection."""
    kind = polygon.get("type") if isinstance(polygon, dict) else None
    if kind == "FeatureCollection":
        found = [g for f in polygon.get("features", []) for g in _geometries(f)]
    elif kind == "Feature":
        found = _geometries(polygon["geometry"]) if polygon.get("geometry") else []
    elif kind in ("Polygon", "MultiPolygon"):
        found = [polygon]
    else:
        raise ConfigError(f"the extent polygon is a {kind or type(polygon).__name__}, not a GeoJSON polygon",
                          fix="pass a Polygon or MultiPolygon geometry, Feature or FeatureCollection")
    if not found:
        raise ConfigError("the extent polygon holds no geometry", fix="select at least one polygon feature")
    return found


def _extent(reader: Reader, config: PredictConfig, raster: Path) -> tuple[Window, list[dict[str, Any]] | None]:
    """The window of ``reader`` to predict and the polygons (in the raster's CRS) that mask it, if any."""
    full = Window(0, 0, reader.width, reader.height)
    if config.bbox is None and config.polygon is None:
        return full, None
    given = config.bbox_crs if config.bbox is not None else config.polygon_crs
    if given and reader.crs is None:
        raise PredictionError("the raster has no CRS, so an extent in another CRS cannot be placed on it",
                              path=raster, fix="assign the raster a CRS, or give the extent in pixel-grid units")
    crs = given or reader.crs
    try:
        if config.bbox is not None:
            shapes = None
            box = transform_bounds(crs, reader.crs, *config.bbox, densify_pts=21) if given else config.bbox
        else:
            shapes = [transform_geom(crs, reader.crs, g) if given else g for g in _geometries(config.polygon)]
            corners = np.array([geometry_bounds(g) for g in shapes])
            box = (*corners[:, :2].min(axis=0), *corners[:, 2:].max(axis=0))
    except (CRSError, ValueError) as err:
        raise ConfigError(f"the extent's CRS {crs!r} is not usable ({err})", fix="give an EPSG code or WKT") from err
    win = from_bounds(*box, transform=reader.transform)
    col0, row0 = max(math.floor(win.col_off + 1e-6), 0), max(math.floor(win.row_off + 1e-6), 0)
    col1 = min(math.ceil(win.col_off + win.width - 1e-6), reader.width)
    row1 = min(math.ceil(win.row_off + win.height - 1e-6), reader.height)
    if col1 <= col0 or row1 <= row0:
        what = "bounding box" if config.bbox is not None else "polygon"
        raise PredictionError(
            f"the {what} ({', '.join(f'{v:.6g}' for v in box)} in the raster's CRS) lies outside the raster "
            f"({', '.join(f'{v:.6g}' for v in reader.bounds)})",
            path=raster, fix="pick an extent that overlaps the raster (check its CRS), or predict the whole raster",
        )
    return Window(col0, row0, col1 - col0, row1 - row0), shapes


class _Output:
    """One GeoTIFF band set written in whole rows of blocks: rows are staged until a block row is complete."""

    def __init__(self, dst: rasterio.io.DatasetWriter):
        self.dst = dst
        self.stage = np.empty((dst.count, min(BLOCK, dst.height), dst.width), dtype=dst.dtypes[0])
        self.row = 0  # output row of stage row 0
        self.filled = 0

    def add(self, data: np.ndarray) -> None:
        """Append finished rows ``data`` [bands, n, width] below those already added."""
        done = 0
        while done < data.shape[1]:
            take = min(data.shape[1] - done, self.stage.shape[1] - self.filled)
            self.stage[:, self.filled : self.filled + take] = data[:, done : done + take]
            self.filled += take
            done += take
            if self.filled == self.stage.shape[1]:
                self.flush()

    def flush(self) -> None:
        if self.filled:
            self.dst.write(self.stage[:, : self.filled], window=Window(0, self.row, self.dst.width, self.filled))
            self.row += self.filled
            self.filled = 0


def _open_outputs(
    stack: ExitStack, targets: dict[str, Path], reader: Reader, extent: Window, pkg: ModelPackage
) -> dict[str, _Output]:
    """Open each output at a temporary path (renamed into place when ``stack`` closes without error)."""
    dtype, nodata = _class_dtype(pkg.classes.values)
    base = {
        "driver": "GTiff", "width": int(extent.width), "height": int(extent.height), "crs": reader.crs,
        "transform": reader.window_transform(extent), "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK,
        "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    specs = {
        "classes": {"count": 1, "dtype": dtype, "nodata": nodata},
        "probabilities": {"count": pkg.classes.num_classes, "dtype": "float32", "nodata": PROBABILITY_NODATA,
                          "predictor": 3},
        "confidence": {"count": 1, "dtype": "float32", "nodata": PROBABILITY_NODATA, "predictor": 3},
    }
    outputs = {}
    for kind, path in targets.items():
        tmp = stack.enter_context(atomic_path(path))
        dst = stack.enter_context(rasterio.open(tmp, "w", **base, **specs[kind]))
        _describe(dst, kind, pkg)
        outputs[kind] = _Output(dst)
    return outputs


def _class_dtype(values: list[int]) -> tuple[str, int]:
    """The smallest GeoTIFF type holding the class values, with a nodata value that is not one of them."""
    low, high = min(values), max(values)
    if low >= 0 and high < 255:
        return "uint8", 255
    if low >= 0 and high < 65535:
        return "uint16", 65535
    return "int32", int(np.iinfo(np.int32).min)


def _describe(dst: rasterio.io.DatasetWriter, kind: str, pkg: ModelPackage) -> None:
    """Band descriptions, class tags and (class map) the colour table."""
    classes = pkg.classes
    dst.update_tags(GEOFM_CLASSES=json.dumps(classes.to_list()), GEOFM_MODEL=pkg.path or "", GEOFM_OUTPUT=kind)
    if kind == "classes":
        dst.set_band_description(1, "class: " + ", ".join(f"{v}={n}" for v, n in zip(classes.values, classes.names,
                                                                                        strict=True)))
        dst.update_tags(1, **{f"CLASS_{v}": n for v, n in zip(classes.values, classes.names, strict=True)})
        if dst.dtypes[0] in ("uint8", "uint16"):
            table = {v: (*_rgb(c), 255) for v, c in zip(classes.values, classes.colours, strict=True)}
            dst.write_colormap(1, {int(dst.nodata): (0, 0, 0, 0), **table})
    elif kind == "probabilities":
        for band, (value, name) in enumerate(zip(classes.values, classes.names, strict=True), start=1):
            dst.set_band_description(band, name)
            dst.update_tags(band, CLASS_VALUE=str(value), CLASS_NAME=name)
    else:
        dst.set_band_description(1, "confidence (highest class probability)")


def _rgb(colour: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b) in 0..255."""
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


class _Job:
    """The windows of one prediction and the rolling buffer where their weighted probabilities are summed.

    ``sums`` [K, rows, width] float32 holds the extent rows from ``top`` on (at most one tile of them); ``keep``
    [rows, width] marks pixels that are valid and inside the polygon. Every window's weights are the outer product
    of :func:`weight_window` with itself, so the total weight of a pixel is ``row_weight[y] * col_weight[x]``.
    """

    def __init__(
        self, pkg: ModelPackage, reader: Reader, extent: Window, shapes: list[dict[str, Any]] | None,
        config: PredictConfig, device: torch.device | str,
    ) -> None:
        self.pkg, self.reader, self.extent, self.shapes, self.device = pkg, reader, extent, shapes, device
        self.tile = tile = pkg.tile_size
        self.batch = config.batch_size
        self.norm_mode, self.stats = pkg.normalisation, pkg.stats
        stride = max(1, round(tile * (1 - config.overlap)))
        c0, r0, w, h = (int(v) for v in (extent.col_off, extent.row_off, extent.width, extent.height))
        self.rows = window_starts(*_with_context(r0, h, reader.height, tile), reader.height, tile, stride)
        self.cols = window_starts(*_with_context(c0, w, reader.width, tile), reader.width, tile, stride)
        self.total = len(self.rows) * len(self.cols)
        w1 = weight_window(tile)
        self.row_weight = _coverage(self.rows, r0, h, w1)
        self.col_weight = _coverage(self.cols, c0, w, w1)
        self.onnx = is_onnx(pkg)
        self.weights = np.outer(w1, w1)
        if not self.onnx:
            import torch

            self.weights = torch.from_numpy(self.weights).to(device)
        k = pkg.classes.num_classes
        self.sums = np.zeros((k, min(h, tile), w), np.float32)
        self.keep = np.zeros((min(h, tile), w), bool)
        self.top = 0
        self.valid_pixels = 0
        self.class_pixels = np.zeros(k, np.int64)
        self.run_count = 0
        self.out_dtype, self.nodata = _class_dtype(pkg.classes.values)

    def run(self, outputs: dict[str, _Output], cancel: CancelFlag | None) -> Iterator[ProgressEvent]:
        """Predict strip by strip; finished rows go to ``outputs``. Yields progress after every batch."""
        done = 0
        for i, row in enumerate(self.rows):
            for start in range(0, len(self.cols), self.batch):
                if cancel is not None and cancel.is_set():
                    raise _Stop
                cols = self.cols[start : start + self.batch]
                self._batch(row, cols)
                done += len(cols)
                yield ProgressEvent(done, self.total, "windows")
            height = int(self.extent.height)
            until = self.rows[i + 1] - int(self.extent.row_off) if i + 1 < len(self.rows) else height
            self._finish(min(max(until, 0), height), outputs)

    def _batch(self, row: int, cols: list[int]) -> None:
        """Read, normalise and predict the windows at (row, col) and add them to the buffer."""
        tiles, placed = [], []
        for col in cols:
            window = Window(col, row, self.tile, self.tile)
            data, valid = _read_padded(self.reader, window)
            keep = valid
            if self.shapes is not None:
                keep = valid & geometry_mask(self.shapes, out_shape=valid.shape, invert=True,
                                             transform=self.reader.window_transform(window))
            if keep.any():  # an ONNX graph normalises raw values itself; NaN marks invalid pixels for it
                tiles.append(np.where(valid, data, np.float32(np.nan)) if self.onnx
                             else normalise(data, valid, self.stats, self.norm_mode))
                placed.append((row - int(self.extent.row_off), col - int(self.extent.col_off), keep))
        if not tiles:
            return
        if self.onnx:
            probs = self.pkg.probabilities(np.stack(tiles)) * self.weights
        else:
            import torch

            x = torch.from_numpy(np.stack(tiles)).to(self.device)
            amp = torch.autocast("cuda") if self.device.type == "cuda" else nullcontext()
            with torch.inference_mode(), amp:
                logits = self.pkg.model(x)
            probs = (torch.softmax(logits.float(), dim=1) * self.weights).cpu().numpy()
        self.run_count += len(tiles)
        for p, (r, c, keep) in zip(probs, placed, strict=True):
            self._add(r, c, p, keep)

    def _add(self, row: int, col: int, probs: np.ndarray, keep: np.ndarray) -> None:
        """Add weighted probabilities [K, T, T] of the window at extent (row, col), clipped to the extent."""
        h, w = int(self.extent.height), int(self.extent.width)
        r0, r1, c0, c1 = max(row, 0), min(row + self.tile, h), max(col, 0), min(col + self.tile, w)
        part = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        self.sums[:, r0 - self.top : r1 - self.top, c0:c1] += probs[(slice(None), *part)]
        self.keep[r0 - self.top : r1 - self.top, c0:c1] |= keep[part]

    def _finish(self, until: int, outputs: dict[str, _Output]) -> None:
        """Turn buffer rows [top, until) into outputs, a few rows at a time, then move the rest of the buffer up."""
        n = until - self.top
        if n <= 0:
            return
        for a in range(0, n, FINISH_ROWS):
            b = min(a + FINISH_ROWS, n)
            self._emit(self.top + a, self.sums[:, a:b], self.keep[a:b], outputs)
        _shift_up(self.sums, n)
        _shift_up(self.keep, n)
        self.top = until

    def _emit(self, row: int, sums: np.ndarray, keep: np.ndarray, outputs: dict[str, _Output]) -> None:
        """Write finished rows from extent row ``row``: ``sums`` [K, n, width] weighted sums, ``keep`` [n, width]."""
        index = sums.argmax(axis=0)
        values = self.pkg.classes.decode(index).astype(self.out_dtype)
        values[~keep] = self.nodata
        outputs["classes"].add(values[None])
        self.valid_pixels += int(keep.sum())
        self.class_pixels += np.bincount(index[keep], minlength=len(self.class_pixels))
        if "probabilities" in outputs or "confidence" in outputs:
            probs = sums / np.outer(self.row_weight[row : row + len(keep)], self.col_weight)
            probs[:, ~keep] = PROBABILITY_NODATA
            if "probabilities" in outputs:
                outputs["probabilities"].add(probs)
            if "confidence" in outputs:
                outputs["confidence"].add(probs.max(axis=0)[None])


def _with_context(offset: int, length: int, full: int, tile: int) -> tuple[int, int]:
    """An extent's span along one axis grown by a quarter tile each side (within the raster), so that its edge
    pixels are predicted with real neighbours around them rather than at a window's edge."""
    margin = tile // 4
    start, stop = max(offset - margin, 0), min(offset + length + margin, full)
    return start, stop - start


def _read_padded(reader: Reader, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (data float32 [C,T,T], valid [T,T]); where it overhangs the raster, 0 and invalid.

    Only rasters smaller than a tile overhang; done by hand because a WarpedVRT refuses boundless reads.
    """
    inside = window.intersection(Window(0, 0, reader.width, reader.height))
    data, valid = read_window(reader, inside)
    if data.shape[1:] == (window.height, window.width):
        return data, valid
    r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
    padded = np.zeros((data.shape[0], int(window.height), int(window.width)), np.float32)
    padded_valid = np.zeros(padded.shape[1:], bool)
    padded[:, r : r + data.shape[1], c : c + data.shape[2]] = data
    padded_valid[r : r + data.shape[1], c : c + data.shape[2]] = valid
    return padded, padded_valid


def _coverage(starts: list[int], offset: int, length: int, w1: np.ndarray) -> np.ndarray:
    """Total 1-D weight [length] that windows at ``starts`` give each pixel of [offset, offset + length)."""
    total = np.zeros(length, np.float32)
    for s in starts:
        a, b = max(s, offset), min(s + len(w1), offset + length)
        total[a - offset : b - offset] += w1[a - s : b - s]
    return total


def _shift_up(buffer: np.ndarray, n: int) -> None:
    """Move rows (axis -2) n.. of ``buffer`` to 0.. in place, chunk by chunk (no full copy), and zero the rest."""
    rows = buffer.shape[-2]
    for a in range(0, rows - n, n):
        b = min(a + n, rows - n)
        buffer[..., a:b, :] = buffer[..., a + n : b + n, :]
    buffer[..., max(rows - n, 0) :, :] = 0


def _write_error(err: OSError, output: Path) -> PredictionError:
    """A PredictionError for a failed write, naming a full disk when that is the cause."""
    if err.errno == errno.ENOSPC or "No space left" in str(err):
        return PredictionError("the disk is full; the prediction was not written", path=output,
                               fix="free some disk space or write to another drive, then run it again")
    return PredictionError(f"writing the prediction failed ({err})", path=output,
                           fix="check the output folder (space, permissions, network drive) and run it again")
