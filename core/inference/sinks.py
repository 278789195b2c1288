"""Where finished rows go: class, probability and confidence GeoTIFFs, pixel tallies, a confusion matrix.

A sink is any object with ``add(rows)`` (called with every :class:`.blend.FinishedRows`, top to bottom, each row
once) and ``close()`` (called once after the last rows, before outputs are renamed into place). To add an output
format, write such a class; for another GeoTIFF kind, subclass :class:`GeoTiffSink` with ``bands(rows)``, add its
profile to :func:`geotiff_specs` and its class to ``GEOTIFF_SINKS``.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import rasterio
from rasterio.windows import Window

from ..fileio import atomic_path
from .blend import FinishedRows

if TYPE_CHECKING:
    from ..classes import ClassMap
    from ..labels import LabelSource

BLOCK = 256  # output GeoTIFF tile size (px); rows are written in whole rows of blocks
PROBABILITY_NODATA = -1.0


class Sink(Protocol):
    def add(self, rows: FinishedRows) -> None: ...

    def close(self) -> None: ...


# -- tallies ----------------------------------------------------------------------------------------------------------
class ClassTally:
    """Pixels kept (valid, inside the extent) and, of those, pixels per predicted class index."""

    def __init__(self, num_classes: int):
        self.valid_pixels = 0
        self.class_pixels = np.zeros(num_classes, np.int64)

    def add(self, rows: FinishedRows) -> None:
        self.valid_pixels += int(rows.keep.sum())
        self.class_pixels += np.bincount(rows.index[rows.keep], minlength=len(self.class_pixels))

    def close(self) -> None:
        """Nothing to release."""


class ConfusionSink:
    """Counts predicted against reference classes into ``matrix`` (a :class:`..metrics.ConfusionMatrix` or
    anything with its ``update(pred, target)``), no file written.

    ``labels`` gives class indices (-1: unlabelled) on the grid the prediction was read on; ``extent`` is where
    the finished rows lie on that grid. Pixels the prediction skipped (nodata, outside the polygons) are not counted.
    """

    def __init__(self, labels: LabelSource, extent: Window, matrix: Any):
        self.labels, self.extent, self.matrix = labels, extent, matrix

    def add(self, rows: FinishedRows) -> None:
        n, width = rows.keep.shape
        target = self.labels.read(Window(int(self.extent.col_off), int(self.extent.row_off) + rows.row, width, n))
        target[~rows.keep] = -1
        self.matrix.update(rows.index, target)

    def close(self) -> None:
        """Nothing to release (the caller closes the labels)."""


# -- GeoTIFF outputs --------------------------------------------------------------------------------------------------
class BlockRowWriter:
    """Writes rows into a GeoTIFF in whole rows of blocks: rows are staged until a block row is complete."""

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


class GeoTiffSink:
    """A GeoTIFF output: ``bands(rows)`` turns finished rows into its bands [count, n, width], written in whole rows
    of blocks."""

    def __init__(self, dst: rasterio.io.DatasetWriter, classes: ClassMap):
        self.dst, self.classes = dst, classes
        self.writer = BlockRowWriter(dst)

    def bands(self, rows: FinishedRows) -> np.ndarray:
        raise NotImplementedError

    def add(self, rows: FinishedRows) -> None:
        self.writer.add(self.bands(rows))

    def close(self) -> None:
        self.writer.flush()


class ClassRaster(GeoTiffSink):
    """Class values (not indices) per pixel; nodata where nothing was predicted."""

    def bands(self, rows: FinishedRows) -> np.ndarray:
        values = self.classes.decode(rows.index).astype(self.dst.dtypes[0])
        values[~rows.keep] = self.dst.nodata
        return values[None]


class ProbabilityRaster(GeoTiffSink):
    """One band per class: its blended probability."""

    def bands(self, rows: FinishedRows) -> np.ndarray:
        return np.where(rows.keep, rows.probabilities, np.float32(PROBABILITY_NODATA))


class ConfidenceRaster(GeoTiffSink):
    """The highest blended class probability."""

    def bands(self, rows: FinishedRows) -> np.ndarray:
        return np.where(rows.keep, rows.probabilities.max(axis=0), np.float32(PROBABILITY_NODATA))[None]


GEOTIFF_SINKS: dict[str, type[GeoTiffSink]] = {"classes": ClassRaster, "probabilities": ProbabilityRaster,
                                  "confidence": ConfidenceRaster}


def geotiff_specs(classes: ClassMap) -> dict[str, dict[str, Any]]:
    """Band count, type and nodata of each GeoTIFF kind."""
    dtype, nodata = class_dtype(classes.values)
    return {
        "classes": {"count": 1, "dtype": dtype, "nodata": nodata},
        "probabilities": {"count": classes.num_classes, "dtype": "float32", "nodata": PROBABILITY_NODATA,
                          "predictor": 3},
        "confidence": {"count": 1, "dtype": "float32", "nodata": PROBABILITY_NODATA, "predictor": 3},
    }


def open_geotiff_sinks(
    stack: ExitStack, targets: dict[str, Path], reader: Any, extent: Window, classes: ClassMap, model: str
) -> list[Sink]:
    """A sink per output kind in ``targets`` ('classes', 'probabilities', 'confidence' -> path), each writing a
    tiled, compressed GeoTIFF of ``extent`` of ``reader``'s grid at a temporary path that is renamed into place
    when ``stack`` closes without error (and removed when it closes with one). ``model`` is tagged as the source."""
    base = {
        "driver": "GTiff", "width": int(extent.width), "height": int(extent.height), "crs": reader.crs,
        "transform": reader.window_transform(extent), "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK,
        "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    specs = geotiff_specs(classes)
    sinks: list[Sink] = []
    for kind, path in targets.items():
        tmp = stack.enter_context(atomic_path(path))
        dst = stack.enter_context(rasterio.open(tmp, "w", **base, **specs[kind]))
        describe(dst, kind, classes, model)
        sinks.append(GEOTIFF_SINKS[kind](dst, classes))
    return sinks


def class_dtype(values: list[int]) -> tuple[str, int]:
    """The smallest GeoTIFF type holding the class values, with a nodata value that is not one of them."""
    low, high = min(values), max(values)
    if low >= 0 and high < 255:
        return "uint8", 255
    if low >= 0 and high < 65535:
        return "uint16", 65535
    return "int32", int(np.iinfo(np.int32).min)


def describe(dst: rasterio.io.DatasetWriter, kind: str, classes: ClassMap, model: str | os.PathLike) -> None:
    """Band descriptions, class tags and (class map) the colour table."""
    dst.update_tags(GEOFM_CLASSES=json.dumps(classes.to_list()), GEOFM_MODEL=os.fspath(model or ""),
                    GEOFM_OUTPUT=kind)
    if kind == "classes":
        dst.set_band_description(1, "class")  # QGIS puts it above the legend: the names are in the tags and .qml
        dst.update_tags(1, **{f"CLASS_{v}": n for v, n in zip(classes.values, classes.names)})
        if dst.dtypes[0] in ("uint8", "uint16"):
            table = {v: (*_rgb(c), 255) for v, c in zip(classes.values, classes.colours)}
            dst.write_colormap(1, {int(dst.nodata): (0, 0, 0, 0), **table})
    elif kind == "probabilities":
        for band, (value, name) in enumerate(zip(classes.values, classes.names), start=1):
            dst.set_band_description(band, name)
            dst.update_tags(band, CLASS_VALUE=str(value), CLASS_NAME=name)
    else:
        dst.set_band_description(1, "confidence (highest class probability)")


def _rgb(colour: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b) in 0..255."""
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
