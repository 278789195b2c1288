"""One inference job: windows read in batches, run, blended and handed to sinks, strip by strip.

:func:`open_job` opens the raster as the model should read it (resampled when asked) and places the extent;
:meth:`InferenceJob.run` then does the work, yielding progress, and raises :class:`..errors.Cancelled` when the
cancel flag is set between batches. Memory is bounded by (tile + block) rows × the extent's width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rasterio.features import geometry_mask
from rasterio.windows import Window

from ..config import PredictConfig, stride_for
from ..errors import Cancelled, PredictionError
from ..events import ProgressEvent
from ..raster import open_raster
from .blend import Blender
from .extent import extent_window
from .flips import flip_averaged
from .resolution import Reader, model_reader
from .runner import Runner, check_bands
from .sinks import Sink
from .windows import WindowGrid, read_padded


class CancelFlag(Protocol):
    """What ``cancel`` must offer; a ``threading.Event`` does."""

    def is_set(self) -> bool: ...


class InferenceJob:
    """The windows of ``runner`` over ``extent`` of ``reader`` (masked by ``shapes``, polygons in the raster's CRS)
    and the buffer where their probabilities blend. ``notes`` are warnings for the user; ``run_count`` counts the
    windows run (windows with no pixel to keep are skipped)."""

    def __init__(
        self, runner: Runner, reader: Reader, extent: Window, shapes: list[dict[str, Any]] | None,
        overlap: float, batch_size: int, notes: Sequence[str] = (), flips: bool = False,
    ) -> None:
        self.runner, self.reader, self.extent, self.shapes = runner, reader, extent, shapes
        self.batch, self.notes, self.flips = batch_size, list(notes), flips
        self.tile = runner.tile_size
        self.grid = WindowGrid.over(extent, reader.width, reader.height, self.tile, stride_for(self.tile, overlap))
        self.blend = Blender(runner.classes.num_classes, self.grid.weights, self.grid.row_weight, self.grid.col_weight)
        self.total = self.grid.total
        self.run_count = 0

    def run(self, sinks: Sequence[Sink], cancel: CancelFlag | None = None) -> Iterator[ProgressEvent]:
        """Predict strip by strip; every finished row goes to each sink once, top to bottom, then the sinks are
        closed. Yields progress (windows done of total) after every batch."""
        done = 0
        for strip, row in enumerate(self.grid.rows):
            for start in range(0, len(self.grid.cols), self.batch):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                cols = self.grid.cols[start : start + self.batch]
                self._batch(row, cols)
                done += len(cols)
                yield ProgressEvent(done, self.total, "windows")
            for rows in self.blend.finish(self.grid.finished_after(strip)):
                for sink in sinks:
                    sink.add(rows)
        for sink in sinks:
            sink.close()

    def _batch(self, row: int, cols: list[int]) -> None:
        """Read and run the windows at (row, col) and add them to the buffer."""
        raw, valid, placed = [], [], []
        r0, c0 = int(self.extent.row_off), int(self.extent.col_off)
        for col in cols:
            window = Window(col, row, self.tile, self.tile)
            data, ok = read_padded(self.reader, window)
            keep = ok
            if self.shapes is not None:
                keep = ok & geometry_mask(self.shapes, out_shape=ok.shape, invert=True,
                                          transform=self.reader.window_transform(window))
            if keep.any():
                raw.append(data)
                valid.append(ok)
                placed.append((row - r0, col - c0, keep))
        if not raw:
            return
        raw, valid = np.stack(raw), np.stack(valid)
        probs = (flip_averaged(self.runner.probabilities, raw, valid) if self.flips
                 else self.runner.probabilities(raw, valid))
        expected = (len(raw), self.runner.classes.num_classes, self.tile, self.tile)
        if tuple(probs.shape) != expected:
            raise PredictionError(f"the model gave probabilities of shape {tuple(probs.shape)}, not {expected}",
                                  path=self.runner.path or None, fix="check that the model matches its metadata")
        self.run_count += len(raw)
        for p, (r, c, keep) in zip(probs, placed):
            self.blend.add(r, c, p, keep)


def open_job(
    stack: ExitStack, load: Callable[[], Runner], raster: Path, config: PredictConfig
) -> InferenceJob:
    """Open ``raster`` (closed with ``stack``), load the runner, check its bands, read it at the training resolution
    when ``config.resample_to_training`` asks and place the extent of ``config`` on it."""
    src = stack.enter_context(open_raster(raster))
    runner = load()
    check_bands(runner, src.count, raster)
    reader, notes = model_reader(src, runner.resolution, runner.crs, config.resample_to_training)
    if reader is not src:
        stack.enter_context(reader)
    extent, shapes = extent_window(reader, raster, config.bbox, config.bbox_crs, config.polygon, config.polygon_crs)
    return InferenceJob(runner, reader, extent, shapes, config.overlap, config.batch_size, notes,
                        config.test_time_flips)
