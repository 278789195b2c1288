"""geofm's Processing provider: the train and predict algorithms for the toolbox, Modeler, batch and qgis_process."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

ICON = Path(__file__).resolve().parent.parent / "icon.png"


class GeoFMProvider(QgsProcessingProvider):
    """Provider id 'geofm': algorithms 'geofm:train', 'geofm:predict', 'geofm:export' and 'geofm:pretrain'."""

    def id(self) -> str:  # noqa: A003 - QGIS API name
        return "geofm"

    def name(self) -> str:
        return "geofm"

    def longName(self) -> str:  # noqa: N802
        return "geofm — deep-learning segmentation"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802
        from .export_algorithm import ExportAlgorithm
        from .predict_algorithm import PredictAlgorithm
        from .pretrain_algorithm import PretrainAlgorithm
        from .train_algorithm import TrainAlgorithm

        self.addAlgorithm(TrainAlgorithm())
        self.addAlgorithm(PredictAlgorithm())
        self.addAlgorithm(ExportAlgorithm())
        self.addAlgorithm(PretrainAlgorithm())
