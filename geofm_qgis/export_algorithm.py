"""Processing algorithm 'geofm:export': write a .geofm model package as an .onnx file (prediction without torch)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from .engine_task import preload
from .processing_common import SegmentationAlgorithm, require_engine, run_job


class ExportAlgorithm(SegmentationAlgorithm):
    """Export a model package to ONNX, with normalisation and softmax inside the graph."""

    def name(self) -> str:
        return "export"

    def displayName(self) -> str:  # noqa: N802
        return "Export model to ONNX"

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Writes a geofm model package (.geofm) as an ONNX model (.onnx) that predicts without torch: with "
                "'Predict with segmentation model' where only onnxruntime is installed, in the Deepness plugin, or "
                "with onnxruntime anywhere. Normalisation and softmax are inside the graph: it takes raw band values "
                "(NaN, or the nodata value given here, marks nodata) and returns class probabilities. Its metadata "
                "holds the classes, bands, tile size and resolution.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("MODEL", "Model package", extension="geofm"))
        self.addParameter(QgsProcessingParameterNumber(
            "NODATA", "Nodata value the model should ignore (for tools such as Deepness that pass raw values)",
            type=QgsProcessingParameterNumber.Type.Double, optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "DYNAMIC_SIZE", "Any window size (Deepness cannot load such a model)", defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "ONNX model", fileFilter="ONNX (*.onnx)"))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802
        """Main thread, before processAlgorithm runs in a worker: load the engine here (see preload)."""
        require_engine()
        preload("onnx_export")
        return True

    def process(self, parameters, context, feedback) -> dict[str, Any]:
        from ..core.onnx_export import export_job

        package = self.parameterAsFile(parameters, "MODEL", context)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        nodata = parameters.get("NODATA")
        options = {"nodata": self.parameterAsDouble(parameters, "NODATA", context) if nodata not in (None, "") else None,
                   "dynamic_size": self.parameterAsBool(parameters, "DYNAMIC_SIZE", context)}
        last = run_job(export_job(package, output, **options), feedback, "The export")
        feedback.pushInfo(f"ONNX model written to {last.path} ({last.summary['bytes'] / 2**20:.1f} MiB).")
        return {"OUTPUT": last.path}
