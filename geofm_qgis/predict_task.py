"""Prediction as a QgsTask: the engine writes the rasters in a worker thread, layers are added at the end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import Qgis

from .engine_task import EngineTask, preload
from .messages import push
from .result_layers import add_prediction


@dataclass
class PredictRequest:
    """What the predict dialog (or a test) asks for: engine arguments plus how to show the result."""

    package: str
    raster: str
    output: str
    config: Any  # geofm.core.predict.PredictConfig
    classes: list[dict[str, Any]]
    name: str


def prediction_task(request: PredictRequest, bar) -> EngineTask:
    """A task running ``predict``; when it ends well the styled layers join the project, else ``bar`` says why.
    Warnings (a resolution unlike the training one, an all-nodata extent) reach ``bar`` and the log as they come."""
    preload("predict")

    def job(cancel):
        from ..core.predict import predict  # already loaded by the dialog (preload)

        return predict(request.package, request.raster, request.output, request.config, cancel)

    task = EngineTask(f"geofm: predicting {Path(request.raster).name}", job, bar)  # warnings: bar and log
    task.layers = []

    def ended(ok: bool) -> None:  # noqa: FBT001
        if ok:
            outputs = (task.result.summary or {}).get("outputs", {})
            task.layers = add_prediction(request.name, task.result.path, request.classes, outputs.get("confidence"))
            push(bar, "geofm", f"Prediction saved to {task.result.path}.", Qgis.MessageLevel.Success, 8)
        elif task.error:
            push(bar, "Prediction failed", task.error, Qgis.MessageLevel.Critical)

    task.ended.connect(ended)
    return task
