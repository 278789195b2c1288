"""Processing algorithm 'geofm:pretrain': the pretrain dialog's job for the Modeler, batch mode and qgis_process."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
)

from .engine_task import preload
from .messages import InputProblem
from .processing_common import FeedbackCancel, SegmentationAlgorithm, file_of, require_engine, run_job
from .processing_settings import add_setting_parameters, setting_values

#: PretrainConfig settings this algorithm declares itself (the layers or a folder, the extent and the output); the
#: rest come from the schema.
BY_HAND = ("images", "bbox", "bbox_crs", "output")


class PretrainAlgorithm(SegmentationAlgorithm):
    """Pretrain a backbone on unlabelled raster layers (self-supervised); writes a .geofm backbone package."""

    def name(self) -> str:
        return "pretrain"

    def displayName(self) -> str:  # noqa: N802
        return "Pretrain backbone (self-supervised)"

    def shortHelpString(self) -> str:  # noqa: N802
        return ("Pretrains a ResNet backbone on your own unlabelled rasters (by default it learns to fill in hidden "
                "patches of every band; SimSiam is the other method). Writes a .geofm backbone package; 'Train "
                "segmentation model' starts from it when it is given as the weights file.\n\n"
                "Images: raster layers, a folder (every raster file in it), or both; all with the same bands. An "
                "extent keeps the crops inside it and leaves out images it misses.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        from ..core.config import PretrainConfig

        self.addParameter(QgsProcessingParameterMultipleLayers("IMAGES", "Raster layers (unlabelled, same bands)",
                                                               QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile("FOLDER", "…and/or a folder of rasters",
                                                     QgsProcessingParameterFile.Behavior.Folder, optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (empty: the whole images)", optional=True))
        add_setting_parameters(self, PretrainConfig, BY_HAND)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Backbone package",
                                                                "geofm backbone package (*.geofm)"))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802
        require_engine()
        preload("pretrain")
        return True

    def process(self, parameters, context, feedback) -> dict[str, Any]:
        from ..core.config import PretrainConfig
        from ..core.pretrain import pretrain

        layers = self.parameterAsLayerList(parameters, "IMAGES", context)
        folder = self.parameterAsFile(parameters, "FOLDER", context)
        images = [file_of(layer, "image") for layer in layers] + ([folder] if folder else [])
        if not images:
            raise InputProblem("Choose the raster layers to pretrain on, or a folder of rasters.")
        extent = {}
        if parameters.get("EXTENT"):
            e = self.parameterAsExtent(parameters, "EXTENT", context)
            extent = {"bbox": [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()],
                      "bbox_crs": self.parameterAsExtentCrs(parameters, "EXTENT", context).toWkt() or None}
        config = PretrainConfig.from_dict(
            {"images": images, "num_workers": 0, "output": self.parameterAsFileOutput(parameters, "OUTPUT", context),
             **extent, **setting_values(self, parameters, context, PretrainConfig, BY_HAND)},
            source="the algorithm's parameters").validate()
        last = run_job(pretrain(config, FeedbackCancel(feedback)), feedback, "Pretraining")
        return {"OUTPUT": last.path}
