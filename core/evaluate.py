"""How good is a model package on an image with reference labels? Predict seamlessly, then count pixels.

Labels are read as the package was trained: its ignore values and background setting (from the stored training
config) apply unless the caller overrides them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import PredictConfig, is_vector
from .dataset import build_scenes
from .events import Event, FinishedEvent
from .grid import check_grid, require_usable
from .metrics import ConfusionMatrix
from .package import ModelPackage, load_package
from .predict import predict
from .raster import open_raster


def evaluate(
    package: ModelPackage | str | os.PathLike,
    image: str | os.PathLike,
    labels: str | os.PathLike,
    label_field: str | None = None,
    output_json: str | os.PathLike | None = None,
    config: PredictConfig | None = None,
    align_labels: bool = False,
    *,
    ignore_values: Sequence[float] | None = None,
    background: bool | None = None,
) -> Iterator[Event]:
    """Predict ``image`` with ``package`` and compare with ``labels`` over labelled, valid pixels.

    ``ignore_values`` (label values that mean 'not labelled') and ``background`` (vector labels: pixels outside
    every polygon are the background class) default to the package's training settings.
    Yields the prediction's progress events, then a FinishedEvent whose ``summary`` is the metrics dict
    (overall accuracy, per-class IoU / F1, mean IoU); ``output_json`` gets the same as JSON.
    """
    pkg = package if isinstance(package, ModelPackage) else load_package(package)
    if not is_vector(labels):
        require_usable(check_grid(image, labels, tile_size=pkg.tile_size), align_labels)
    field = label_field if is_vector(labels) else None
    trained_ignore, trained_background = trained_label_settings(pkg.metadata)
    (scene,), classes = build_scenes([(image, labels)], field, pkg.classes,
                                     trained_ignore if ignore_values is None else ignore_values,
                                     trained_background if background is None else background)
    with tempfile.TemporaryDirectory(prefix="geofm-eval-") as tmp:
        predicted = Path(tmp) / "prediction.tif"
        yield from (e for e in predict(pkg, image, predicted, config) if not isinstance(e, FinishedEvent))
        cm = ConfusionMatrix(classes.num_classes, classes.names)
        src, truth = scene.open()
        try:
            with open_raster(predicted) as pred:
                for _, window in pred.block_windows(1):
                    values = pred.read(1, window=window)
                    valid = values != pred.nodata if pred.nodata is not None else None
                    guess, target = classes.encode(values, valid), truth.read(window)
                    target[guess < 0] = -1  # the input was nodata there: nothing was predicted
                    cm.update(guess, target)
        finally:
            truth.close()
            src.close()
    metrics: dict[str, Any] = {**cm.compute(), "model": pkg.path, "image": os.fspath(image),
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
