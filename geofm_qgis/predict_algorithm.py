"""Processing algorithm 'geofm:predict': apply a model package to a raster; the class raster comes out styled."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)

from .engine_task import preload
from .package_info import read_metadata
from .processing_common import (
    FeedbackCancel,
    SegmentationAlgorithm,
    default_image,
    file_of,
    require_engine,
    run_job,
)
from .processing_settings import add_setting_parameters, setting_values
from .result_layers import paletted_renderer, prediction_name

#: PredictConfig settings this algorithm declares itself (the extent); the rest come from the schema.
BY_HAND = ("bbox", "bbox_crs")
MODEL_FILTER = "geofm model (*.geofm *.onnx)"
#: Post-processors by output path, alive until QGIS has styled the layer (one per output, replaced on rerun).
STYLERS: dict[str, QgsProcessingLayerPostProcessorInterface] = {}


class PalettedStyler(QgsProcessingLayerPostProcessorInterface):
    """Gives the class raster the package's class names and colours when Processing loads it."""

    def __init__(self, classes: list[dict[str, Any]], name: str) -> None:
        super().__init__()
        self.classes, self.name = classes, name

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            layer.setName(self.name)
            layer.setRenderer(paletted_renderer(layer, self.classes))
            layer.triggerRepaint()


class PredictAlgorithm(SegmentationAlgorithm):
    """Predict a class raster (and optionally a confidence raster) with a .geofm model package."""

    def name(self) -> str:
        return "predict"

    def displayName(self) -> str:  # noqa: N802
        return "Predict with segmentation model"

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Applies a geofm model package (.geofm), or an .onnx model exported from one (runs with onnxruntime, "
                "without torch), to a raster with the same bands as its training image and writes a GeoTIFF class "
                "map styled with the package's class names and colours; optionally a confidence raster. Sliding "
                "windows overlap and are blended, so tile seams do not show.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("MODEL", "Model (.geofm, or .onnx exported by geofm)",
                                                     fileFilter=MODEL_FILTER))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster", defaultValue=default_image()))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (empty: the whole raster)", optional=True))
        from ..core.config import PredictConfig

        add_setting_parameters(self, PredictConfig, BY_HAND)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Classes"))
        self.addOutput(QgsProcessingOutputFile("CONFIDENCE_OUTPUT", "Confidence raster"))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802
        """Main thread, before processAlgorithm runs in a worker: load the engine here (see preload)."""
        require_engine()
        preload("predict")
        return True

    def process(self, parameters, context, feedback) -> dict[str, Any]:
        from ..core.config import PredictConfig
        from ..core.predict import predict

        package = self.parameterAsFile(parameters, "MODEL", context)
        classes = read_metadata(package)["classes"]
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        raster = file_of(layer, "raster")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        options: dict[str, Any] = {}
        if parameters.get("EXTENT"):
            extent = self.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
            options = {"bbox": [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
                       "bbox_crs": layer.crs().toWkt()}
        config = PredictConfig.from_dict({**setting_values(self, parameters, context, PredictConfig, BY_HAND),
                                          **options}, source="the algorithm's parameters")
        last = run_job(predict(package, raster, output, config, FeedbackCancel(feedback)), feedback, "Prediction")
        if context.willLoadLayerOnCompletion(output):
            styler = PalettedStyler(classes, prediction_name(raster, package))
            STYLERS[output] = styler  # Processing runs a short-lived copy of the algorithm: keep the styler here
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(styler)
        return {"OUTPUT": last.path, "CONFIDENCE_OUTPUT": last.summary.get("outputs", {}).get("confidence")}
