"""The pretrain dialog: raster layers and a time budget in, a validated PretrainConfig out. No ML logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import QgsProject, QgsRasterLayer
from qgis.gui import QgsExtentWidget, QgsFileWidget, QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QCursor, QGuiApplication
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.config import RASTER_SUFFIXES
from .engine_status import CHARTS, EngineStatus
from .layer_sources import first_image, layer_file, output_problem
from .messages import InputProblem, push
from .setting_widgets import advanced_section, value_of, widget_for

#: The time budget the dialog offers first (minutes); the engine's default (0) means "run the given epochs".
DIALOG_MINUTES = 10.0
BASIC = ("backbone", "minutes", "crop_size", "batch_size", "device")
#: Settings laid out by hand (not as generated widgets).
BY_HAND = ("images", "bbox", "bbox_crs", "output")
#: The item data of a folder in the list (a layer's item holds its layer id as UserRole).
FOLDER_ROLE = Qt.ItemDataRole.UserRole + 1


class PretrainDialog(QDialog):
    """Tick one or more raster layers, set a time budget (with an estimate), ``start_pretraining(config)`` on OK."""

    start_pretraining = pyqtSignal(object)

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from ..core.config import PretrainConfig
        from ..core.schema import default_of, settings_of

        self.iface = iface
        self.setWindowTitle("geofm — Pretrain a backbone on your imagery")
        self.bar = QgsMessageBar(self)
        self.settings = {s.name: s for s in settings_of(PretrainConfig) if s.exposed("dialog")}
        values = {name: default_of(PretrainConfig, name) for name in self.settings}
        values["minutes"] = DIALOG_MINUTES
        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        form = QFormLayout()
        layout.addLayout(form)
        self.layer_list = QListWidget()
        self.layer_list.setWordWrap(True)  # a folder's line says what is in it
        self.layer_list.setToolTip(self.settings["images"].describe())
        rasters = [layer for layer in QgsProject.instance().layerTreeRoot().layerOrder()
                   if isinstance(layer, QgsRasterLayer) and layer_file(layer) is not None]
        for layer in rasters:
            bands = layer.bandCount()
            item = QListWidgetItem(f"{layer.name()} ({bands} band{'s' if bands != 1 else ''})")
            item.setData(Qt.ItemDataRole.UserRole, layer.id())
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.layer_list.addItem(item)
        # ticked at first: the first image, not a class raster or a prediction above it (else the first raster)
        if rasters:
            self.layer_list.item(rasters.index(first_image(rasters) or rasters[0])).setCheckState(Qt.CheckState.Checked)
        form.addRow("Raster layers (unlabelled)", self.layer_list)
        self.folder_button = QPushButton("Add a folder of rasters…")
        self.folder_button.setToolTip("Every raster file in the folder (" + ", ".join(RASTER_SUFFIXES) + ") is "
                                      "pretrained on; they need the same bands as the layers ticked.")
        self.folder_button.clicked.connect(lambda: self.add_folder())
        form.addRow("", self.folder_button)
        self.extent_widget = QgsExtentWidget()
        self.extent_widget.setNullValueAllowed(True, "Whole images")
        self.extent_widget.clear()
        canvas = iface.mapCanvas() if iface is not None else None
        if isinstance(canvas, QgsMapCanvas):  # offers the map view and drawing on the map
            self.extent_widget.setMapCanvas(canvas)
        self.extent_widget.setToolTip(self.settings["bbox"].describe())
        form.addRow(self.settings["bbox"].label, self.extent_widget)
        self.widgets: dict[str, QWidget] = {}
        for name in BASIC:
            self.widgets[name] = widget_for(self.settings[name], values[name])
            form.addRow(self.settings[name].label, self.widgets[name])
        self.estimate_button = QPushButton("Estimate the time per step")
        self.estimate_button.clicked.connect(self.estimate)
        self.estimate_label = QLabel("An estimate tells how many epochs the budget buys on this machine.")
        self.estimate_label.setWordWrap(True)
        form.addRow(self.estimate_button, self.estimate_label)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter("geofm backbone package (*.geofm)")
        self.output_widget.setConfirmOverwrite(True)
        self.output_widget.setToolTip(self.settings["output"].describe())
        self.output_widget.setFilePath(str(Path.home() / "backbone.geofm"))
        form.addRow(self.settings["output"].label, self.output_widget)
        advanced = [s for s in self.settings.values() if s.name not in {*BY_HAND, *BASIC}]
        layout.addWidget(advanced_section(advanced, values, self.widgets))
        self.engine_status = EngineStatus("pretrain", also=(CHARTS,))
        layout.addWidget(self.engine_status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton("Pretrain", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 560)

    def add_folder(self, folder: str | None = None) -> None:
        """Add a folder (asked for when not given) to the list, ticked, with the number of rasters in it."""
        from ..core.config import raster_files
        from ..core.errors import GeoFMError

        folder = folder if folder is not None else QFileDialog.getExistingDirectory(self, "A folder of rasters")
        if not folder:
            return
        try:
            files = raster_files([folder])
        except GeoFMError as err:
            push(self.bar, "Not added", str(err))
            return
        bands = sorted({QgsRasterLayer(f, "", "gdal").bandCount() for f in files})
        what = (f"{len(files)} raster{'s' if len(files) != 1 else ''}, {bands[0]} band{'s' if bands[0] != 1 else ''}"
                if len(bands) == 1 else f"{len(files)} rasters of {' or '.join(map(str, bands))} bands: pretraining "
                "needs the same bands in every image")
        item = QListWidgetItem(f"{Path(folder).name}/ — folder of {what}")
        item.setToolTip(folder)
        item.setData(FOLDER_ROLE, folder)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked)
        self.layer_list.addItem(item)

    def images(self) -> list[str]:
        """The ticked layers' files and folders, in list order."""
        project = QgsProject.instance()
        found = []
        for item in (self.layer_list.item(i) for i in range(self.layer_list.count())):
            if item.checkState() != Qt.CheckState.Checked:
                continue
            folder = item.data(FOLDER_ROLE)
            layer = None if folder else project.mapLayer(item.data(Qt.ItemDataRole.UserRole))
            found += [folder] if folder else [layer_file(layer)] if layer is not None else []
        return found

    def extent(self) -> dict:
        """``bbox`` and ``bbox_crs`` of the extent chosen; nothing for the whole images."""
        if not self.extent_widget.isValid():
            return {}
        e = self.extent_widget.outputExtent()
        return {"bbox": (e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()),
                "bbox_crs": self.extent_widget.outputCrs().toWkt()}

    def setting_values(self) -> dict:
        return {name: value_of(self.settings[name], widget) for name, widget in self.widgets.items()}

    def config(self):
        """The PretrainConfig the widgets describe, validated; InputProblem (plain words) when something is off."""
        from ..core.config import PretrainConfig
        from ..core.errors import GeoFMError

        images = self.images()
        if not images:
            raise InputProblem("Tick at least one raster layer (or add a folder of rasters) to pretrain on.")
        output = self.output_widget.filePath().strip()
        problem = output_problem(output, (".geofm",))
        if problem:
            raise InputProblem(problem)
        config = PretrainConfig(images=images, output=output, **self.setting_values(), **self.extent(),
                                num_workers=None if sys.platform.startswith("linux") else 0)
        try:
            config.validate()
        except GeoFMError as err:
            raise InputProblem(str(err)) from err
        counts = {QgsRasterLayer(path, "", "gdal").bandCount() for path in config.images}
        if len(counts) > 1:
            raise InputProblem("Pretraining needs the same bands in every image, but the ones ticked have "
                               f"{' or '.join(map(str, sorted(counts)))} bands: untick the others.")
        return config

    def estimate(self) -> str:
        """Time one step on this machine and say what the budget buys; the text is also shown."""
        from ..core.errors import GeoFMError
        from ..core.pretrain import estimate_seconds_per_step, plan

        try:
            config = self.config()
            QGuiApplication.setOverrideCursor(QCursor(Qt.CursorShape.WaitCursor))
            try:
                step = estimate_seconds_per_step(config)
            finally:
                QGuiApplication.restoreOverrideCursor()
        except (InputProblem, GeoFMError) as err:
            push(self.bar, "Cannot estimate yet", str(err))
            return ""
        epoch = step * config.steps_per_epoch
        if config.minutes:
            epochs = plan(config, seconds_per_step=step).epochs
            text = (f"About {step:.2f} s per step, {epoch:.0f} s per epoch: {config.minutes:g} min buy about "
                    f"{epochs} epoch(s) of {config.steps_per_epoch} steps ({epochs * config.steps_per_epoch:,} "
                    f"steps of {config.batch_size} crops).")
        else:
            text = (f"About {step:.2f} s per step: {config.epochs} epoch(s) take about "
                    f"{config.epochs * epoch / 60:.0f} min.")
        self.estimate_label.setText(text)
        return text

    def accept(self) -> None:
        try:
            config = self.config()
        except InputProblem as problem:
            push(self.bar, "Cannot pretrain yet", str(problem))
            return
        self.start_pretraining.emit(config)
        super().accept()
