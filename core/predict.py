"""Prediction over rasters of any size: blended sliding windows, streamed block by block to GeoTIFF.

The public entry point over :mod:`.inference`: it checks the settings and output paths, then runs an inference job
whose finished rows go to GeoTIFF sinks (class map, and optionally probabilities and confidence) written at
temporary paths, renamed into place only when everything is written. Memory is bounded by (tile + block) rows ×
the extent's width, whatever the raster's height.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import PredictConfig
from .errors import Cancelled, PredictionError
from .events import CancelledEvent, Event, FinishedEvent, ProgressEvent, WarningEvent
from .fileio import check_outputs
from .inference.extent import geometries
from .inference.job import CancelFlag, open_job
from .inference.runner import Runner, device_of, runner_loader
from .inference.sinks import ClassTally, open_geotiff_sinks
from .inference.windows import window_starts
from .qml import style_path, write_style
from .raster import require_geotransform

try:  # torch's native extensions load with this module, on the importing thread (geofm_qgis preloads it there)
    from .inference import torch_runner  # noqa: F401
except ImportError:  # no torch: runners that need none still work
    pass

if TYPE_CHECKING:
    from .package import ModelPackage

__all__ = ["CancelFlag", "PredictConfig", "confidence_path", "predict", "window_starts"]


def confidence_path(output: str | os.PathLike) -> Path:
    """Where ``confidence=True`` writes the confidence band: ``<stem>_confidence.tif`` beside ``output``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_confidence{output.suffix or '.tif'}")


def predict(
    package: ModelPackage | Runner | str | os.PathLike,
    raster: str | os.PathLike,
    output: str | os.PathLike,
    config: PredictConfig | None = None,
    cancel: CancelFlag | None = None,
) -> Iterator[Event]:
    """Predict ``raster`` with ``package`` (a loaded package, its path, or a runner: see :mod:`.inference.runner`)
    into the class-map GeoTIFF ``output``.

    The config, the device and the output paths are checked now (ConfigError / PredictionError); the rest when the
    returned generator runs. It yields WarningEvent, ProgressEvent (windows done of total) and ends with a
    FinishedEvent (``summary``: windows, seconds, pixel counts per class, output paths) or, when ``cancel.is_set()``
    between batches, a CancelledEvent with no output left behind.
    """
    config = (config or PredictConfig()).validate()
    if config.polygon is not None:
        geometries(config.polygon)
    raster = Path(raster)
    targets = _targets(raster, Path(output), config)
    model = package if isinstance(package, (str, os.PathLike)) else getattr(package, "path", None)
    check_outputs({f"{kind} output": path for kind, path in targets.items()},
                  {"input raster": raster, "model package": model or None})
    if config.resample_to_training:
        require_geotransform(raster, "resampled to the training resolution",
                             "georeference the raster, or predict without resampling to the training resolution")
    return _predict(runner_loader(package, config.device), raster, targets, config, cancel)


def _predict(
    load: Callable[[], Runner],
    raster: Path,
    targets: dict[str, Path],
    config: PredictConfig,
    cancel: CancelFlag | None,
) -> Iterator[Event]:
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            job = open_job(stack, load, raster, config)
            runner = job.runner
            for note in job.notes:
                yield WarningEvent(note)
            sinks = open_geotiff_sinks(stack, targets, job.reader, job.extent, runner.classes, runner.path)
            tally = ClassTally(runner.classes.num_classes)
            yield ProgressEvent(0, job.total, f"predicting {job.total} windows on {device_of(runner)}")
            yield from job.run([*sinks, tally], cancel)
            if tally.valid_pixels == 0:
                yield WarningEvent(
                    f"{raster}: every pixel of the extent is nodata (or outside the polygon), so the output is all "
                    "nodata. Fix: check the raster's nodata value and the extent."
                )
        style = write_style(targets["classes"], runner.classes)  # names and colours for whoever opens the file
    except Cancelled:
        yield CancelledEvent("", "prediction cancelled; no output was written")
        return
    except OSError as err:
        raise _write_error(err, targets["classes"]) from err
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "windows": job.total,
        "windows_run": job.run_count,
        "seconds": round(seconds, 3),
        "windows_per_s": round(job.total / seconds, 3) if seconds > 0 else None,
        "device": device_of(runner),
        "width": int(job.extent.width),
        "height": int(job.extent.height),
        "valid_pixels": tally.valid_pixels,
        "class_pixels": dict(zip(runner.classes.names, tally.class_pixels.tolist())),
        "outputs": {kind: str(path) for kind, path in targets.items()},
        "style": str(style),
    }
    yield FinishedEvent(str(targets["classes"]), summary)


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
    if style_path(output).resolve() == style_path(raster).resolve():
        raise PredictionError("the class map's style file would replace the input raster's style "
                              f"({style_path(raster).name})", path=output,
                              fix="give the prediction a name of its own, e.g. …_classes.tif")
    return targets


def _write_error(err: OSError, output: Path) -> PredictionError:
    """A PredictionError for a failed write, naming a full disk when that is the cause."""
    if err.errno == errno.ENOSPC or "No space left" in str(err):
        return PredictionError("the disk is full; the prediction was not written", path=output,
                               fix="free some disk space or write to another drive, then run it again")
    return PredictionError(f"writing the prediction failed ({err})", path=output,
                           fix="check the output folder (space, permissions, network drive) and run it again")
