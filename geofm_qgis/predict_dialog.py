"""The predict dialog: a model package, a raster and an extent in, a PredictRequest out."""

from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path

from qgis.core import QgsGeometry, QgsMapLayerProxyModel, QgsProcessingUtils, QgsProject, QgsVectorLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox, QgsMessageBar
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .device import device_text
from .engine_status import EngineStatus
from .layer_sources import layer_file, output_problem
from .messages import InputProblem, push
from .package_info import PACKAGE_FILTER, PackageProblem, fit_height, read_metadata, summary_html
from .predict_task import PredictRequest
from .result_layers import prediction_name
from .setting_widgets import widget_for

EXTENTS = (("layer", "Whole layer"), ("canvas", "Current map view"), ("selection", "Selected features of"))


class PredictDialog(QDialog):
    """Choose a package, a raster and an extent; ``start_prediction(PredictRequest)`` on OK."""

    start_prediction = pyqtSignal(object)

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.metadata: dict | None = None
        self.setWindowTitle("geofm — Predict with a model")
        self.bar = QgsMessageBar(self)

        self.package_widget = QgsFileWidget()
        self.package_widget.setFilter(PACKAGE_FILTER)
        self.summary = QTextBrowser()
        self.raster_combo = QgsMapLayerComboBox()
        self.raster_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.extent_group = QButtonGroup(self)
        extent_row = QHBoxLayout()
        for i, (key, text) in enumerate(EXTENTS):
            button = QRadioButton(text)
            button.setProperty("extent", key)
            button.setChecked(i == 0)
            self.extent_group.addButton(button, i)
            extent_row.addWidget(button)
        self.selection_combo = QgsMapLayerComboBox()
        self.selection_combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        extent_row.addWidget(self.selection_combo)
        self.confidence_check = QCheckBox("Also write a confidence layer (probability of the chosen class)")
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif *.tiff)")
        self.output_widget.lineEdit().setPlaceholderText("[Beside the project: <raster>_classes.tif]")
        from ..core.config import PredictConfig
        from ..core.schema import default_of, setting_of

        flips = setting_of(PredictConfig, "test_time_flips")
        self.flips_check = QCheckBox(f"{flips.label} (8× slower)")
        self.flips_check.setToolTip(flips.help)
        self.flips_check.setChecked(default_of(PredictConfig, "test_time_flips"))
        self.device_combo = widget_for(setting_of(PredictConfig, "device"), "auto")
        self.device_label = QLabel("Runs on: known once the engine has loaded")
        self.device_combo.currentIndexChanged.connect(
            lambda: self.device_label.setText(device_text(self.device_combo.currentData())))

        form = QFormLayout()
        form.addRow("Model package", self.package_widget)
        form.addRow("", self.summary)
        form.addRow("Raster", self.raster_combo)
        form.addRow("Extent", extent_row)
        form.addRow("", self.confidence_check)
        form.addRow("", self.flips_check)
        form.addRow("Output", self.output_widget)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.device_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton("Predict", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        layout.addLayout(form)
        self.engine_status = EngineStatus("predict")
        self.engine_status.ready.connect(self._engine_ready)
        layout.addWidget(self.engine_status)
        layout.addWidget(buttons)
        self.package_widget.fileChanged.connect(self.show_package)
        self.show_package("")
        if self.engine_status.loaded:  # opened before: the engine is there, the device can be named now
            self._engine_ready("")
        self.resize(640, 520)

    def _engine_ready(self, problem: str) -> None:
        """The engine has loaded (after the dialog opened): now the device can be named."""
        if not problem:
            self.device_label.setText(device_text(self.device_combo.currentData()))

    def show_package(self, path: str) -> None:
        """Read the package's metadata and show its summary (or why it cannot be read)."""
        self.metadata = None
        if not path:
            self.summary.setHtml("<p>Choose a .geofm model package (or an .onnx exported by geofm): its classes, bands "
                                 "and scores appear here.</p>")
        else:
            try:
                self.metadata = read_metadata(path)
                self.summary.setHtml(summary_html(self.metadata))
            except PackageProblem as problem:
                self.summary.setHtml(f"<p style='color:#c62828'>{html.escape(str(problem))}</p>")
        fit_height(self.summary)

    def request(self) -> PredictRequest:
        """The validated request; InputProblem (plain words) when something must be fixed first."""
        from ..core.config import PredictConfig

        package = self.package_widget.filePath().strip()
        if self.metadata is None:
            raise InputProblem(f"{package}: not a readable model package." if package else
                                 "Choose a model package (.geofm or .onnx).")
        layer = self.raster_combo.currentLayer()
        if layer is None:
            raise InputProblem("Choose the raster to predict on.")
        raster = layer_file(layer)
        if raster is None:
            raise InputProblem(f"“{layer.name()}” is not a file on disk (e.g. a WMS layer): export it to a "
                                 "GeoTIFF first (right-click ▸ Export ▸ Save As…).")
        need = self.metadata.get("bands", {}).get("count")
        if need is not None and layer.bandCount() != need:
            raise InputProblem(f"The model needs {need} bands but “{layer.name()}” has {layer.bandCount()}. "
                                 "Use a raster with the same bands, in the same order, as the training image.")
        output = self.output_widget.filePath().strip() or default_output(raster)
        problem = output_problem(output, (".tif", ".tiff"))
        if problem:
            raise InputProblem(problem)
        config = PredictConfig(device=self.device_combo.currentData(), confidence=self.confidence_check.isChecked(),
                               test_time_flips=self.flips_check.isChecked(), **self._extent())
        _check_outputs(package, raster, output, config.confidence)
        return PredictRequest(package, raster, output, config, self.metadata["classes"],
                              prediction_name(raster, package))

    def _extent(self) -> dict:
        key = self.extent_group.checkedButton().property("extent")
        if key == "canvas":
            canvas = self.iface.mapCanvas()
            e = canvas.extent()
            crs = canvas.mapSettings().destinationCrs()
            return {"bbox": (e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()), "bbox_crs": crs.toWkt()}
        if key == "selection":
            layer = self.selection_combo.currentLayer()
            if not isinstance(layer, QgsVectorLayer) or layer.selectedFeatureCount() == 0:
                raise InputProblem("Select one or more polygons first (or choose another extent).")
            geometry = QgsGeometry.unaryUnion([f.geometry() for f in layer.selectedFeatures()])
            return {"polygon": json.loads(geometry.asJson()), "polygon_crs": layer.crs().toWkt()}
        return {}

    def accept(self) -> None:
        """Validate; on success hand the request on and close."""
        try:
            request = self.request()
        except InputProblem as problem:
            push(self.bar, "Cannot predict yet", str(problem))
            return
        self.start_prediction.emit(request)
        super().accept()


def _check_outputs(package: str, raster: str, output: str, confidence: bool) -> None:  # noqa: FBT001
    """InputProblem when an output would overwrite the raster, the model or another output (as predict refuses)."""
    from ..core.errors import GeoFMError
    from ..core.fileio import check_outputs
    from ..core.predict import confidence_path

    outputs = {"class raster": output, "confidence raster": confidence_path(output) if confidence else None}
    try:
        check_outputs(outputs, {"input raster": raster, "model package": package})
    except GeoFMError as err:
        raise InputProblem(str(err)) from err


def default_output(raster: str) -> str:
    """``<raster>_classes.tif`` in the project's folder (numbered when taken); in a temporary folder only when the
    project is not saved or its folder is not writable."""
    home = QgsProject.instance().homePath()
    folder = Path(home) if home and os.access(home, os.W_OK) else Path(tempfile.mkdtemp(
        dir=QgsProcessingUtils.tempFolder()))
    candidate, n = folder / f"{Path(raster).stem}_classes.tif", 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{Path(raster).stem}_classes_{n}.tif"
    return str(candidate)
