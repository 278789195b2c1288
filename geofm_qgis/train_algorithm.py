"""Processing algorithm 'geofm:train': the train dialog's job for the Modeler, batch mode and qgis_process."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
)

from .engine_task import preload
from .processing_common import (
    FeedbackCancel,
    SegmentationAlgorithm,
    default_image,
    file_of,
    require_engine,
    run_job,
)
from .processing_settings import add_setting_parameters, setting_values

#: TrainConfig settings this algorithm declares itself (layers and the output); the rest come from the schema.
BY_HAND = ("images", "labels", "label_field", "output")


class TrainAlgorithm(SegmentationAlgorithm):
    """Train a segmentation model on an image and a label layer; writes a .geofm model package."""

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802
        return "Train segmentation model"

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Trains a deep-learning segmentation model (a ResNet backbone with a decoder) on an image raster "
                "and its labels: a class raster, or polygons (or points) with a class field. Writes a .geofm model "
                "package that 'Predict with segmentation model' applies to other rasters.\n\n"
                "Labels: give either a class raster on the image's grid, or a polygon or point layer and its class "
                "field, not both. The image is the multi-band raster the model learns from.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        from ..core.config import TrainConfig

        self.addParameter(QgsProcessingParameterRasterLayer("IMAGE", "Image raster", defaultValue=default_image()))
        self.addParameter(QgsProcessingParameterRasterLayer("LABELS", "Labels: a class raster", optional=True))
        # The class field's parent is a vector-only parameter: a parent that may hold a raster crashes QGIS 3.22
        # when the dialog opens with a raster loaded.
        self.addParameter(QgsProcessingParameterVectorLayer(
            "LABEL_POLYGONS", "…or labels as polygons or points",
            types=[QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint],
            optional=True))
        self.addParameter(QgsProcessingParameterField("LABEL_FIELD", "Class field (polygon or point labels)",
                                                      parentLayerParameterName="LABEL_POLYGONS", optional=True))
        add_setting_parameters(self, TrainConfig, BY_HAND)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model package",
                                                                "geofm model package (*.geofm)"))
        self.addOutput(QgsProcessingOutputNumber("MEAN_IOU", "Validation mean IoU"))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802
        """Main thread, before processAlgorithm runs in a worker: load the engine here (see preload)."""
        require_engine()
        preload("train")
        return True

    def process(self, parameters, context, feedback) -> dict[str, Any]:
        from ..core.config import TrainConfig
        from ..core.train import train

        image = file_of(self.parameterAsRasterLayer(parameters, "IMAGE", context), "image")
        raster_labels = self.parameterAsRasterLayer(parameters, "LABELS", context)
        vector_labels = self.parameterAsVectorLayer(parameters, "LABEL_POLYGONS", context)
        if (raster_labels is None) == (vector_labels is None):
            raise QgsProcessingException("Give the labels either as a class raster ('Labels') or as polygons or "
                                         "points ('…or labels as polygons'), not both and not neither.")
        field = None
        if vector_labels is not None:
            field = self.parameterAsString(parameters, "LABEL_FIELD", context) or None
            if not field or vector_labels.fields().indexOf(field) < 0:
                raise QgsProcessingException(f"The label layer “{vector_labels.name()}” needs its class field: set "
                                             "'Class field' to the attribute that holds each feature's class.")
        labels = file_of(raster_labels or vector_labels, "label layer")
        config = TrainConfig.from_dict(
            {"images": [image], "labels": [labels], "label_field": field, "num_workers": 0,
             "output": self.parameterAsFileOutput(parameters, "OUTPUT", context),
             **setting_values(self, parameters, context, TrainConfig, BY_HAND)},
            source="the algorithm's parameters").validate()
        last = run_job(train(config, FeedbackCancel(feedback)), feedback, "Training")
        miou = (last.summary.get("metrics") or {}).get("mean_iou")
        return {"OUTPUT": last.path, "MEAN_IOU": miou}

