"""How good is a model package on an image with reference labels? Predict seamlessly, counting pixels as rows finish.

The same inference as :func:`.predict.predict`, with a confusion-count sink in place of the GeoTIFF outputs: nothing
is written but the optional metrics JSON. Labels are read as the package was trained: its ignore values and
background setting (from the stored training config) apply unless the caller overrides them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .config import PredictConfig, is_vector
from .dataset import build_scenes
from .errors import Cancelled
from .events import CancelledEvent, Event, FinishedEvent, ProgressEvent, WarningEvent
from .grid import check_grid, require_usable
from .inference.job import CancelFlag, open_job
from .inference.runner import Runner, device_of, metadata_of, runner_loader
from .inference.sinks import ClassTally, ConfusionSink
from .metrics import ConfusionMatrix
from .package import ModelPackage


def evaluate(
    package: ModelPackage | Runner | str | os.PathLike,
    image: str | os.PathLike,
    labels: str | os.PathLike,
    label_field: str | None = None,
    output_json: str | os.PathLike | None = None,
    config: PredictConfig | None = None,
    align_labels: bool = False,
    *,
    ignore_values: Sequence[float] | None = None,
    background: bool | None = None,
    cancel: CancelFlag | None = None,
) -> Iterator[Event]:
    """Predict ``image`` with ``package`` and compare with ``labels`` over labelled, valid pixels.

    ``ignore_values`` (label values that mean 'not labelled') and ``background`` (vector labels: pixels outside
    every polygon are the background class) default to the package's training settings. Yields the prediction's
    warnings and progress, then a FinishedEvent whose ``summary`` is the metrics dict (overall accuracy, per-class
    IoU / F1, mean IoU); ``output_json`` gets the same as JSON. A CancelledEvent ends it when ``cancel`` is set.
    """
    config = (config or PredictConfig()).validate()
    load = runner_loader(package, config.device)
    with ExitStack() as stack:
        try:
            job = open_job(stack, load, Path(image), config)
            runner = job.runner
            if not is_vector(labels):
                require_usable(check_grid(image, labels, tile_size=runner.tile_size), align_labels)
            trained_ignore, trained_background = trained_label_settings(metadata_of(runner))
            (scene,), classes = build_scenes(
                [(image, labels)], label_field if is_vector(labels) else None, runner.classes,
                trained_ignore if ignore_values is None else ignore_values,
                trained_background if background is None else background,
            )
            truth = scene.labels(job.reader)  # on the grid the prediction is read on (resampled or not)
            stack.callback(truth.close)
            for note in job.notes:
                yield WarningEvent(note)
            cm = ConfusionMatrix(classes.num_classes, classes.names)
            tally = ClassTally(classes.num_classes)
            yield ProgressEvent(0, job.total, f"predicting {job.total} windows on {device_of(runner)}")
            yield from job.run([ConfusionSink(truth, job.extent, cm), tally], cancel)
        except Cancelled:
            yield CancelledEvent("", "evaluation cancelled; nothing was written")
            return
    if tally.valid_pixels == 0:
        yield WarningEvent(f"{image}: every pixel of the extent is nodata, so no pixel was scored. Fix: check the "
                           "image's nodata value.")
    metrics: dict[str, Any] = {**cm.compute(), "model": runner.path, "image": os.fspath(image),
                               "labels": os.fspath(labels)}
    if output_json:
        cm.write_json(output_json)
    yield FinishedEvent(os.fspath(output_json or ""), metrics)


def trained_label_settings(metadata: dict[str, Any]) -> tuple[list[float], bool]:
    """The ignore values and background setting a package was trained with (its stored training config, any
    schema version); none and False when it does not say."""
    stored = metadata.get("train_config") if isinstance(metadata, dict) else None
    stored = stored if isinstance(stored, dict) else {}
    raw = stored.get("ignore_values")
    values = [float(v) for v in raw if isinstance(v, (int, float)) and not isinstance(v, bool)] \
        if isinstance(raw, (list, tuple)) else []
    return values, stored.get("background") is True
