"""What geofm's Processing algorithms share: engine loading, plain-word errors, cancellation, event reporting,
the image layer a dialog offers first."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingFeedback, QgsProject

from ..core.events import EventHandler
from .deps import missing_dependencies
from .layer_sources import first_image, layer_file
from .messages import InputProblem


class SegmentationAlgorithm(QgsProcessingAlgorithm):
    """What geofm's algorithms have in common: their group, a fresh instance of the same class, and errors in plain
    words. Each algorithm implements :meth:`process`; Processing calls :meth:`processAlgorithm`."""

    def group(self) -> str:
        return "Segmentation"

    def groupId(self) -> str:  # noqa: N802
        return "segmentation"

    def createInstance(self) -> SegmentationAlgorithm:  # noqa: N802
        return type(self)()

    def process(self, parameters, context, feedback) -> dict[str, Any]:
        """The algorithm's work; raise GeoFMError, InputProblem or QgsProcessingException for a bad input."""
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback) -> dict[str, Any]:  # noqa: N802
        """Run :meth:`process`; an engine error, a dialog-side problem or a file the system refuses reaches the
        Processing log as its message (file, problem, fix), never as a Python traceback."""
        from ..core.errors import GeoFMError

        try:
            return self.process(parameters, context, feedback)
        except (GeoFMError, InputProblem) as err:
            raise QgsProcessingException(str(err)) from None
        except OSError as err:
            raise QgsProcessingException(os_error_text(err)) from None


def os_error_text(err: OSError) -> str:
    """An operating-system error (permission, full disk, missing folder) as file, problem and fix."""
    where = f"{err.filename}: " if err.filename else ""
    return (f"{where}{err.strerror or err}. Check that the file or folder exists and that you may write there, "
            "or choose another location.")


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


class FeedbackReporter(EventHandler):
    """The Processing front: engine events become a feedback's progress (the core's fraction), lines and
    warnings (pushWarning: shown in the algorithm's log and kept in the history, without failing the run)."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self.feedback = feedback
        self.phase = ""

    def handle(self, event: Any) -> None:
        EventHandler.handle(self, event)
        self.feedback.setProgress(100.0 * self.tracker.fraction)

    def on_ProgressEvent(self, event: Any) -> None:  # noqa: N802
        if event.phase and event.phase != self.phase:
            self.phase = event.phase
            self.feedback.pushInfo(f"Preparing the data: {event.phase}…")

    def on_StartEvent(self, event: Any) -> None:  # noqa: N802
        self.feedback.pushInfo(f"Training on {event.device}: {event.train_tiles} training tiles, "
                               f"{event.val_tiles} validation tiles.")

    def on_EpochEvent(self, event: Any) -> None:  # noqa: N802
        miou = event.metrics.get("mean_iou")
        self.feedback.pushInfo(f"Epoch {event.epoch}: loss {event.train_loss:.4f}"
                               + (f", validation mIoU {miou:.3f}" if miou is not None else ""))

    def on_WarningEvent(self, event: Any) -> None:  # noqa: N802
        if hasattr(self.feedback, "pushWarning"):  # QGIS ≥ 3.20
            self.feedback.pushWarning(event.message)
        else:
            self.feedback.reportError(event.message, False)

    def on_CancelledEvent(self, event: Any) -> None:  # noqa: N802
        self.feedback.pushInfo(event.message)


def run_job(events, feedback: QgsProcessingFeedback, what: str) -> Any:
    """Iterate an engine job, reporting to ``feedback``; return its FinishedEvent. A job that ends otherwise
    (cancelled) raises QgsProcessingException with its message (errors: see processAlgorithm)."""
    reporter = FeedbackReporter(feedback)
    last = None
    for event in events:
        last = event
        reporter.handle(event)
    if type(last).__name__ != "FinishedEvent":
        raise QgsProcessingException(getattr(last, "message", "") or f"{what} stopped before it finished.")
    return last


def default_image() -> str | None:
    """The first multi-band raster of the project (an image, not a class raster), or None: Processing would
    otherwise offer the first raster, often the labels."""
    layer = first_image(QgsProject.instance().layerTreeRoot().layerOrder())
    return layer.source() if layer is not None else None
