"""Processing algorithm 'geofm:train': the train dialog's job for the Modeler, batch mode and qgis_process."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsVectorLayer,
)

from .engine_task import preload
from .processing_common import DEVICES, FeedbackCancel, SegmentationAlgorithm, file_of, require_engine, run_job

WEIGHTS = ["imagenet", "none"]


class TrainAlgorithm(SegmentationAlgorithm):
    """Train a segmentation model on an image and a label layer; writes a .geofm model package."""

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802
        return "Train segmentation model"

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Trains a deep-learning segmentation model (a ResNet backbone with a decoder) on an image raster "
                "and its labels: a class raster, or polygons with a class field. Writes a .geofm model package "
                "that 'Predict with segmentation model' applies to other rasters.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        from ..core.config import BACKBONES, DECODERS, TrainConfig

        d = TrainConfig()
        self.addParameter(QgsProcessingParameterRasterLayer("IMAGE", "Image raster"))
        self.addParameter(QgsProcessingParameterMapLayer(
            "LABELS", "Labels (class raster or polygons)",
            types=[QgsProcessing.SourceType.TypeRaster, QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField("LABEL_FIELD", "Class field (polygon labels)",
                                                      parentLayerParameterName="LABELS", optional=True))
        self.addParameter(QgsProcessingParameterBoolean("ALIGN_LABELS", "Align the labels to the image grid when needed",
                                                        defaultValue=True))
        self.addParameter(QgsProcessingParameterEnum("BACKBONE", "Backbone", options=list(BACKBONES),
                                                     defaultValue=BACKBONES.index(d.backbone)))
        self.addParameter(QgsProcessingParameterEnum("DECODER", "Decoder", options=list(DECODERS),
                                                     defaultValue=DECODERS.index(d.decoder)))
        self.addParameter(QgsProcessingParameterEnum("WEIGHTS", "Pretrained weights", options=WEIGHTS,
                                                     defaultValue=WEIGHTS.index(d.weights)))
        self.addParameter(QgsProcessingParameterFile("WEIGHTS_FILE", "Weights file (instead of the above)",
                                                     optional=True, fileFilter="PyTorch weights (*.pth *.pt)"))
        integer = QgsProcessingParameterNumber.Type.Integer
        double = QgsProcessingParameterNumber.Type.Double
        self.addParameter(QgsProcessingParameterNumber("TILE_SIZE", "Tile size (pixels)", integer, d.tile_size,
                                                       minValue=32))
        self.addParameter(QgsProcessingParameterNumber("OVERLAP", "Tile overlap (share of a tile)", double, 0.5,
                                                       minValue=0.0, maxValue=0.9))
        self.addParameter(QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", integer, d.batch_size, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", "Epochs", integer, d.epochs, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("LR", "Learning rate", double, d.lr, minValue=1e-8))
        self.addParameter(QgsProcessingParameterNumber("VAL_FRACTION", "Validation share", double, d.val_fraction,
                                                       minValue=0.0, maxValue=0.9))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model package",
                                                                "geofm model package (*.geofm)"))
        self.addOutput(QgsProcessingOutputNumber("MEAN_IOU", "Validation mean IoU"))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802
        """Main thread, before processAlgorithm runs in a worker: load the engine here (see preload)."""
        require_engine()
        preload("train")
        return True

    def processAlgorithm(self, parameters, context, feedback) -> dict[str, Any]:  # noqa: N802
        from ..core.config import BACKBONES, DECODERS, TrainConfig
        from ..core.errors import GeoFMError
        from ..core.train import train

        image = file_of(self.parameterAsRasterLayer(parameters, "IMAGE", context), "image")
        labels_layer = self.parameterAsLayer(parameters, "LABELS", context)
        labels = file_of(labels_layer, "label layer")
        field = self.parameterAsString(parameters, "LABEL_FIELD", context) or None
        if isinstance(labels_layer, QgsVectorLayer) and (not field or labels_layer.fields().indexOf(field) < 0):
            raise QgsProcessingException(f"The polygon layer “{labels_layer.name()}” needs its class field: "
                                         "set 'Class field' to the attribute that holds each polygon's class.")
        tile = self.parameterAsInt(parameters, "TILE_SIZE", context)
        overlap = self.parameterAsDouble(parameters, "OVERLAP", context)
        config = TrainConfig(
            images=[image], labels=[labels], label_field=field if isinstance(labels_layer, QgsVectorLayer) else None,
            align_labels=self.parameterAsBool(parameters, "ALIGN_LABELS", context),
            backbone=BACKBONES[self.parameterAsEnum(parameters, "BACKBONE", context)],
            decoder=DECODERS[self.parameterAsEnum(parameters, "DECODER", context)],
            weights=self.parameterAsFile(parameters, "WEIGHTS_FILE", context)
            or WEIGHTS[self.parameterAsEnum(parameters, "WEIGHTS", context)],
            tile_size=tile, stride=max(1, round(tile * (1 - overlap))),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            lr=self.parameterAsDouble(parameters, "LR", context),
            val_fraction=self.parameterAsDouble(parameters, "VAL_FRACTION", context),
            device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
            output=self.parameterAsFileOutput(parameters, "OUTPUT", context),
            num_workers=0,
        )
        try:
            config.validate()
        except GeoFMError as err:
            raise QgsProcessingException(str(err)) from err
        last = run_job(train(config, FeedbackCancel(feedback)), feedback)
        if type(last).__name__ != "FinishedEvent":
            raise QgsProcessingException(getattr(last, "message", "") or "Training stopped before it finished.")
        miou = (last.summary.get("metrics") or {}).get("mean_iou")
        return {"OUTPUT": last.path, "MEAN_IOU": miou}
