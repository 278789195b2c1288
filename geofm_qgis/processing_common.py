"""What both Processing algorithms share: engine loading, cancellation and event reporting."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingFeedback

from .deps import missing_dependencies
from .layer_sources import layer_file


class SegmentationAlgorithm(QgsProcessingAlgorithm):
    """What geofm's algorithms have in common: their group, and a fresh instance of the same class."""

    def group(self) -> str:
        return "Segmentation"

    def groupId(self) -> str:  # noqa: N802
        return "segmentation"

    def createInstance(self) -> SegmentationAlgorithm:  # noqa: N802
        return type(self)()


class FeedbackCancel:
    """The engine's cancel flag, read from a Processing feedback."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.feedback = feedback

    def is_set(self) -> bool:
        return bool(self.feedback and self.feedback.isCanceled())


def require_engine() -> None:
    """Raise a QgsProcessingException in plain words when torch, torchvision or rasterio is missing."""
    missing = missing_dependencies()
    if missing:
        names = ", ".join(f"{m.module} ({m.reason})" for m in missing)
        raise QgsProcessingException(f"geofm cannot run: {names}. Open Raster ▸ geofm ▸ Train model… to install "
                                     "them, or install them with pip into QGIS's Python.")


def file_of(layer, what: str) -> str:
    """The file behind ``layer``, or a QgsProcessingException saying to export it."""
    path = layer_file(layer)
    if path is None:
        name = layer.name() if layer is not None else "(none)"
        raise QgsProcessingException(f"The {what} “{name}” is not a file on disk (e.g. a WMS or virtual layer): "
                                     "export it to a GeoTIFF (or a vector file) first.")
    return path


def report(event: Any, feedback: QgsProcessingFeedback, state: dict[str, Any]) -> None:
    """Turn one engine event into feedback: progress and readable lines."""
    name = type(event).__name__
    if name == "StartEvent":
        state["steps"] = max(1, event.steps_per_epoch)
        state["total"] = max(1, event.total_epochs) * state["steps"]
        feedback.pushInfo(f"Training on {event.device}: {event.train_tiles} training tiles, "
                          f"{event.val_tiles} validation tiles.")
    elif name == "StepEvent" and state.get("total"):
        feedback.setProgress(min(99.0, 100.0 * ((event.epoch - 1) * state["steps"] + event.step) / state["total"]))
    elif name == "EpochEvent":
        miou = event.metrics.get("mean_iou")
        feedback.pushInfo(f"Epoch {event.epoch}: loss {event.train_loss:.4f}"
                          + (f", validation mIoU {miou:.3f}" if miou is not None else ""))
    elif name == "ProgressEvent" and event.total:
        feedback.setProgress(min(99.0, 100.0 * event.done / event.total))
    elif name == "WarningEvent":
        feedback.reportError(event.message, False)
    elif name == "CancelledEvent":
        feedback.pushInfo(event.message)


def run_job(events, feedback: QgsProcessingFeedback) -> Any:
    """Iterate an engine job; return its last event; GeoFMError becomes QgsProcessingException."""
    from ..core.errors import GeoFMError

    state: dict[str, Any] = {}
    last = None
    try:
        for event in events:
            last = event
            report(event, feedback, state)
    except GeoFMError as err:
        raise QgsProcessingException(str(err)) from err
    return last
