"""The train dialog: layers and parameters in, a validated TrainConfig out. No ML logic lives here."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsTask,
    QgsUnitTypes,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox, QgsMessageBar
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.cost import duration_text, training_seconds, training_threads, window_count
from ..core.presets import PRESETS, preset_of
from . import settings
from .classes_table import ID_FIELDS, ClassTable, class_field_guess, classes_from_layer, label_layer_problem
from .device import device_text
from .engine_status import CHARTS, EngineStatus
from .layer_sources import crs_label, export_plan, export_problem, export_task, layer_file, output_problem
from .messages import InputProblem, push
from .setting_widgets import advanced_section, set_value, value_of, widget_for

#: Weights choices that are a file, and the file filter each offers.
FILE_KINDS = {"file": "PyTorch weights (*.pth *.pt)", "backbone": "geofm backbone package (*.geofm)"}
#: What the dialog says of labels that need aligning: Train does it (config.align_labels), nothing blocks.
ON_THE_FLY = ("none needed — Train aligns the labels to the image grid on the fly (nearest neighbour). To train on "
              "them several times, write an aligned copy once with the button below.")
VERDICT_COLOURS = {"aligned": "#1a7f37", "align_labels": "#b35900", "unusable": "#c62828"}


class TrainDialog(QDialog):
    """Choose image and labels, check they line up, set parameters; ``start_training(TrainConfig)`` on OK."""

    start_training = pyqtSignal(object)

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.grid_report = None
        self.export_note = None
        self.setWindowTitle("geofm — Train a segmentation model")
        self.bar = QgsMessageBar(self)

        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        columns = QHBoxLayout()
        columns.addWidget(self._data_group(), 3)
        columns.addWidget(self._parameter_group(), 2)
        layout.addLayout(columns)
        self.engine_status = EngineStatus("train", also=(CHARTS,))
        self.engine_status.ready.connect(self._engine_ready)
        layout.addWidget(self.engine_status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.train_button = buttons.addButton("Train", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        self.image_combo.layerChanged.connect(self.update_grid)
        self.image_combo.layerChanged.connect(self.update_estimate)
        self.label_combo.layerChanged.connect(self._labels_changed)
        self.field_combo.fieldChanged.connect(self._field_changed)
        self.tile_spin.valueChanged.connect(self.update_grid)
        self._pick_label_layer()
        self._labels_changed(self.label_combo.currentLayer())
        if self.engine_status.loaded:  # opened before: the engine is there, the device can be named now
            self._engine_ready("")
        self.resize(1000, 640)

    # -- building ----------------------------------------------------------------------------------------------
    def _data_group(self) -> QGroupBox:
        box = QGroupBox("Data")
        form = QFormLayout(box)
        self.image_combo = QgsMapLayerComboBox()
        self.image_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.label_combo = QgsMapLayerComboBox()
        self.label_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer | QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.field_combo = QgsFieldComboBox()
        self.field_combo.setAllowEmptyFieldName(True)
        self.class_table = ClassTable()
        self.class_table.setMinimumHeight(150)
        reload_button = QPushButton("Reload from the layer's style")
        reload_button.clicked.connect(self.reload_classes)
        self.grid_label = QLabel()
        self.grid_label.setWordWrap(True)
        self.grid_label.setTextFormat(Qt.TextFormat.RichText)
        self.grid_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.grid_label.setMinimumHeight(90)
        self.align_button = QPushButton("Align the labels to the image grid")
        self.align_button.clicked.connect(self.align_labels)
        self.export_button = QPushButton("Export the image to a GeoTIFF first")
        self.export_button.clicked.connect(self.export_image)
        form.addRow("Image", self.image_combo)
        form.addRow("Labels", self.label_combo)
        form.addRow("Class field", self.field_combo)
        form.addRow("Classes", self.class_table)
        form.addRow("", reload_button)
        form.addRow("Grid check", self.grid_label)
        row = QHBoxLayout()
        row.addWidget(self.align_button)
        row.addWidget(self.export_button)
        row.addStretch()
        form.addRow("", row)
        return box

    def _parameter_group(self) -> QGroupBox:
        """Basic settings laid out by hand, the rest in a generated "Advanced" section; every range, default,
        unit and tooltip comes from the settings schema (core/config.py)."""
        from ..core.config import TrainConfig
        from ..core.registries import WEIGHT_SOURCES
        from ..core.schema import settings_of

        values = settings.load()
        shown = {s.name: s for s in settings_of(TrainConfig) if s.exposed("dialog")}
        self.settings = shown
        self.widgets: dict[str, QWidget] = {}
        box = QGroupBox("Model and training")
        form = QFormLayout(box)
        self.preset_combo = QComboBox()
        for name, (label, text, _values) in PRESETS.items():
            self.preset_combo.addItem(label, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.addItem("Custom", "")
        self.preset_combo.setToolTip("Sets backbone, decoder, tile size, epochs and early stopping at once; "
                                     "changing one of them by hand makes it Custom.")
        form.addRow("Preset", self.preset_combo)
        remembered = values["weights"]
        self.weights_combo = QComboBox()
        for entry in WEIGHT_SOURCES:
            self.weights_combo.addItem(entry.label, entry.name)
        self.weights_combo.addItem("From a file…", "file")
        self.weights_combo.addItem("My pretrained backbone…", "backbone")
        self.weights_combo.setCurrentIndex(self.weights_combo.findData(
            remembered if remembered in WEIGHT_SOURCES else _file_kind(remembered)))
        self.weights_combo.setToolTip(shown["weights"].describe())
        self.weights_file = QgsFileWidget()
        self.weights_file.setFilter("PyTorch weights (*.pth *.pt)")
        if remembered not in WEIGHT_SOURCES:
            self.weights_file.setFilePath(remembered)
        self.weights_combo.currentIndexChanged.connect(self._weights_changed)
        weights_row = QWidget()
        row = QHBoxLayout(weights_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.weights_combo)
        row.addWidget(self.weights_file, 1)
        form.addRow(shown["weights"].label, weights_row)
        basic = ("tile_size", "overlap", "batch_size", "epochs", "val_fraction", "device")
        for name in basic:
            self.widgets[name] = widget_for(shown[name], values[name])
            form.addRow(shown[name].label, self.widgets[name])
        self.device_label = QLabel("Runs on: known once the engine has loaded")
        self.widgets["device"].currentIndexChanged.connect(
            lambda: self.device_label.setText(device_text(self.widgets["device"].currentData())))
        form.addRow("", self.device_label)
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        form.addRow("Estimated time", self.estimate_label)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter("geofm model package (*.geofm)")
        self.output_widget.setConfirmOverwrite(True)
        self.output_widget.setToolTip(shown["output"].describe())
        self.output_widget.setFilePath(values["output"] if values["output"] != "model.geofm"
                                       else str(Path.home() / "model.geofm"))
        form.addRow(shown["output"].label, self.output_widget)
        by_hand = {"images", "labels", "label_field", "classes", "align_labels", "weights", "output", *basic}
        advanced = [s for s in shown.values() if s.name not in by_hand]
        form.addRow(advanced_section(advanced, values, self.widgets))
        self.tile_spin = self.widgets["tile_size"]
        self._weights_changed()
        self._applying_preset = False
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(preset_of(self.setting_values())))
        self.preset_combo.currentIndexChanged.connect(self._preset_chosen)
        for name in ("backbone", "decoder", "tile_size", "overlap", "epochs", "patience", "val_fraction", "device"):
            widget = self.widgets[name]
            signal = widget.currentIndexChanged if isinstance(widget, QComboBox) else widget.valueChanged
            signal.connect(self._settings_changed)
        return box

    def chosen_layers(self) -> tuple[str, str, str]:
        """Ids of the image and label layers and the class field, for the next opening of the dialog."""
        image, labels = self.image_combo.currentLayer(), self.label_combo.currentLayer()
        return (image.id() if image else "", labels.id() if labels else "", self.field_combo.currentField())

    def restore_layers(self, image_id: str, labels_id: str, field: str) -> None:
        """Choose again the layers of the last opening, where they are still in the project."""
        project = QgsProject.instance()
        image, labels = project.mapLayer(image_id), project.mapLayer(labels_id)
        if image is not None:
            self.image_combo.setLayer(image)
        if labels is not None:
            self.label_combo.setLayer(labels)
            if field:
                self.field_combo.setField(field)

    def _pick_label_layer(self) -> None:
        """Start with labels that are not the image: a polygon layer, else another raster, else none chosen."""
        image = self.image_combo.currentLayer()
        layers = [self.label_combo.layer(i) for i in range(self.label_combo.count())]
        others = [lyr for lyr in layers if lyr is not None and lyr is not image]
        vectors = [lyr for lyr in others if isinstance(lyr, QgsVectorLayer)]
        self.label_combo.setAllowEmptyLayer(True)
        self.label_combo.setLayer((vectors or others or [None])[0])

    # -- reacting ----------------------------------------------------------------------------------------------
    def _engine_ready(self, problem: str) -> None:
        """The engine has loaded (after the dialog opened): now the device can be named."""
        if not problem:
            self.device_label.setText(device_text(self.widgets["device"].currentData()))
            self.update_estimate()

    def _preset_chosen(self) -> None:
        name = self.preset_combo.currentData()
        if not name:
            return
        self._applying_preset = True
        try:
            for key, value in PRESETS[name][2].items():
                set_value(self.settings[key], self.widgets[key], value)
        finally:
            self._applying_preset = False
        self.update_estimate()

    def _settings_changed(self) -> None:
        if not self._applying_preset:
            self.preset_combo.blockSignals(True)
            self.preset_combo.setCurrentIndex(self.preset_combo.findData(preset_of(self.setting_values())))
            self.preset_combo.blockSignals(False)
            self.update_estimate()

    def update_estimate(self) -> str:
        """Show how long training would take with the chosen layers and settings (also returned)."""
        values = self.setting_values()
        area = labelled_area_px(self.image_combo.currentLayer(), self.label_combo.currentLayer())
        if area is None:
            text = "Known once image and labels are chosen and overlap."
        else:
            windows = window_count(*area, values["tile_size"], values["overlap"])
            if not windows:
                text = "The area shared by image and labels is smaller than one tile."
            else:
                seconds, epochs = training_seconds(windows, values["val_fraction"], values["epochs"],
                                                   values["backbone"], values["decoder"], values["tile_size"],
                                                   training_threads())
                tiles = max(1, round(windows * (1 - values["val_fraction"])))
                text = (f"{duration_text(seconds)} on this computer's CPU (up to {tiles:,} training tiles × "
                        f"{epochs} epochs{'' if values['epochs'] else ', chosen automatically'}")
                text += ("; an NVIDIA GPU is usually many times faster, not measured here)." if _uses_gpu(
                    values["device"]) else ").")
        self.estimate_label.setText(text)
        return text

    def _weights_changed(self) -> None:
        """Show the file picker for weights from a file; grey out the settings the chosen weights make moot."""
        kind = self.weights_combo.currentData()
        self.weights_file.setVisible(kind in FILE_KINDS)
        self.weights_file.setFilter(FILE_KINDS.get(kind, FILE_KINDS["file"]))
        self.widgets["backbone_lr"].setEnabled(kind != "none")  # a backbone from scratch has nothing to keep
        self.widgets["pretrained_decoder"].setEnabled(kind == "backbone")  # only a backbone package has a decoder

    def _labels_changed(self, layer: QgsMapLayer | None) -> None:
        self.update_estimate()
        is_vector = isinstance(layer, QgsVectorLayer)
        self.field_combo.setEnabled(is_vector)
        self.field_combo.setLayer(layer if is_vector else None)
        if is_vector and not self.field_combo.currentField():
            self.field_combo.setField(class_field_guess(layer))
        self.reload_classes()
        self.update_grid()

    def _field_changed(self, _field: str) -> None:
        self.reload_classes()
        self.update_grid()

    def reload_classes(self) -> None:
        """Fill the class table from the label layer's paletted / categorised style or its values."""
        layer, field = self.label_combo.currentLayer(), self.field_combo.currentField()
        image = self.image_combo.currentLayer()
        unusable = layer is None or image is None or label_layer_problem(image, layer) is not None
        classes = [] if unusable else classes_from_layer(layer, field)
        text_field = isinstance(layer, QgsVectorLayer) and bool(field) and layer.fields().indexOf(field) >= 0 and (
            not layer.fields().field(field).isNumeric())
        self.class_table.set_classes(classes, names_editable=not text_field)

    def update_grid(self) -> None:
        """Re-run the grid check on the chosen layers and show its verdict in plain words."""
        self.grid_report = None
        self.align_button.setVisible(False)
        image, labels = self.image_combo.currentLayer(), self.label_combo.currentLayer()
        self.export_button.setVisible(image is not None and layer_file(image) is None)
        if image is None or labels is None:
            self._show_grid("unusable", "Choose an image layer and a label layer.")
            return
        if layer_file(image) is None:
            self._show_grid("unusable", f"“{image.name()}” is not a file on disk (e.g. a WMS or virtual layer). "
                                        "Export it to a GeoTIFF first: the button below does it.")
            return
        if layer_file(labels) is None:
            self._show_grid("unusable", f"“{labels.name()}” is not a file on disk. Save it to a file first "
                                        "(right-click ▸ Export ▸ Save As…).")
            return
        problem = label_layer_problem(image, labels)
        if problem:
            self._show_grid("unusable", problem)
            return
        if isinstance(labels, QgsVectorLayer):
            self._show_grid(*self._vector_check(image, labels))
            return
        from ..core.errors import GeoFMError
        from ..core.grid import check_grid

        try:
            self.grid_report = check_grid(layer_file(image), layer_file(labels), self.tile_spin.value())
        except GeoFMError as err:
            self._show_grid("unusable", str(err))
            return
        aligning = self.grid_report.verdict == "align_labels"
        self.align_button.setVisible(aligning)
        self._show_grid(self.grid_report.verdict,
                        self.grid_report.summary_with(ON_THE_FLY) if aligning else self.grid_report.summary)

    def _vector_check(self, image: QgsRasterLayer, labels: QgsVectorLayer) -> tuple[str, str]:
        field = self.field_combo.currentField()
        problem = _field_problem(labels, field)
        if problem:
            return "unusable", problem
        units = "°" if image.crs().isGeographic() else f" {QgsUnitTypes.toString(image.crs().mapUnits())}"
        lines = [f"Image in {crs_label(image.crs())}, {image.rasterUnitsPerPixelX():g} × "
                 f"{image.rasterUnitsPerPixelY():g}{units} per pixel."]
        if labels.crs() != image.crs():
            lines.append(f"The polygons ({crs_label(labels.crs())}) are reprojected to the image's CRS "
                         f"({crs_label(image.crs())}) when they are burnt into label tiles.")
        extent = QgsCoordinateTransform(labels.crs(), image.crs(), QgsProject.instance()).transformBoundingBox(
            labels.extent())
        if not extent.intersects(image.extent()):
            return "unusable", "The polygons do not overlap the image at all: check both layers' CRS."
        lines.append(f"{labels.featureCount()} polygons; classes from field “{field}”.")
        return "aligned", "Image and labels line up: ready to train.\n" + "\n".join(f"- {t}" for t in lines)

    def _show_grid(self, verdict: str, text: str) -> None:
        colour = VERDICT_COLOURS[verdict]
        head, _, rest = text.partition("\n")
        body = "<br>".join(line.replace("<", "&lt;") for line in rest.splitlines())
        self.grid_label.setText(f"<b style='color:{colour}'>{head.replace('<', '&lt;')}</b><br>{body}")

    # -- actions -----------------------------------------------------------------------------------------------
    def align_labels(self) -> QgsTask:
        """Write the labels warped onto the image grid (nearest neighbour) and select the result."""
        image, labels = layer_file(self.image_combo.currentLayer()), layer_file(self.label_combo.currentLayer())
        target = _free_path(Path(labels), "_aligned", ".tif")
        self.align_button.setEnabled(False)

        def work(_task):
            from ..core.grid import write_aligned_labels

            return str(write_aligned_labels(labels, image, target))

        def done(exception, result=None):
            self.align_button.setEnabled(True)
            if exception is not None:
                push(self.bar, "Aligning failed", str(exception), Qgis.MessageLevel.Critical)
                return
            self._add_and_select(QgsRasterLayer(result, Path(result).stem), self.label_combo)

        task = QgsTask.fromFunction("geofm: aligning labels", work, on_finished=done)
        self.align_task = task  # QGIS holds no Python reference: without this the task is collected and never runs
        QgsApplication.taskManager().addTask(task)
        return task

    def export_image(self, target: str | None = None) -> QgsTask | None:
        """Export a non-file image layer (WMS, XYZ, virtual…) to a GeoTIFF the user names (``target``: asked when
        not given), in a background task; select it as the image once written, unless it came out blank."""
        layer = self.image_combo.currentLayer()
        if layer is None:
            return None
        plan = export_plan(layer, self.label_combo.currentLayer(), self.iface.mapCanvas())
        problem = export_problem(layer, plan)
        if problem is None:
            target = target or self._ask_export_path(layer)
            if not target:
                return None  # the file dialog was cancelled
            problem = output_problem(target, (".tif", ".tiff"))
        if problem:
            push(self.bar, "Cannot export", problem, Qgis.MessageLevel.Critical)
            return None
        task = export_task(layer, target, plan)
        name = layer.name()
        task.writeComplete.connect(lambda path: self._exported(name, path, plan))
        task.errorOccurred.connect(lambda *_: self._export_failed(name, target))
        self.export_task = task  # as align_labels: keep a Python reference while the task runs
        self.export_button.setEnabled(False)
        push(self.bar, "Exporting", f"{name}: {plan.describe()}, to {target}. Progress shows in QGIS's task bar.",
             Qgis.MessageLevel.Info)
        self.export_note = self.bar.currentItem()
        QgsApplication.taskManager().addTask(task)
        return task

    def _ask_export_path(self, layer: QgsMapLayer) -> str:
        """A GeoTIFF name chosen by the user, proposed beside the label file (else the project, else home)."""
        labels = layer_file(self.label_combo.currentLayer())
        folder = Path(labels).parent if labels else Path(QgsProject.instance().homePath() or Path.home())
        path, _ = QFileDialog.getSaveFileName(self, f"Export “{layer.name()}” as a GeoTIFF for training",
                                              str(folder / f"{_safe(layer.name())}.tif"), "GeoTIFF (*.tif *.tiff)")
        return path

    def _exported(self, name: str, path: str, plan) -> None:
        from ..core.raster import is_blank

        self._export_ended()
        if is_blank(path):
            push(self.bar, "The export is blank",
                 f"{path} holds no image: every pixel is empty (0 or nodata), so “{name}” drew nothing over "
                 f"{plan.basis}. The service may be unreachable (offline?) or not cover this area. Check that the "
                 "layer shows on the map there, then export again.")
            return
        self._add_and_select(QgsRasterLayer(path, f"{name} (GeoTIFF)"), self.image_combo)
        push(self.bar, "Exported", f"“{name}” was saved to {path}: {plan.describe()}.", Qgis.MessageLevel.Success, 8)

    def _export_failed(self, name: str, path: str) -> None:
        self._export_ended()
        push(self.bar, "Export failed", f"{path}: QGIS could not write “{name}” there. Check that the folder is "
                                        "writable and the disk not full, then export again.", Qgis.MessageLevel.Critical)

    def _export_ended(self) -> None:
        """Enable the button again and take the 'Exporting…' note away: the outcome replaces it."""
        self.export_button.setEnabled(True)
        if self.export_note is not None and self.export_note in self.bar.items():
            self.bar.popWidget(self.export_note)
        self.export_note = None

    def _add_and_select(self, layer: QgsMapLayer, combo: QgsMapLayerComboBox) -> None:
        QgsProject.instance().addMapLayer(layer)
        combo.setLayer(layer)

    # -- result ------------------------------------------------------------------------------------------------
    def config(self):
        """The TrainConfig the widgets describe, validated; InputProblem (plain words) when something is off."""
        from ..core.config import TrainConfig
        from ..core.errors import GeoFMError

        image, labels = self.image_combo.currentLayer(), self.label_combo.currentLayer()
        if image is None or labels is None:
            raise InputProblem("Choose an image layer and a label layer.")
        image_path = layer_file(image)
        if image_path is None:
            raise InputProblem(f"“{image.name()}” is not a file on disk (it may be a WMS, XYZ or virtual layer): "
                               "geofm trains on raster files. Export it to a GeoTIFF first.")
        label_path = layer_file(labels)
        if label_path is None:
            raise InputProblem(f"“{labels.name()}” is not a file on disk. Save it to a file first.")
        problem = label_layer_problem(image, labels)
        if problem:
            raise InputProblem(problem)
        field = None
        if isinstance(labels, QgsVectorLayer):
            field = self.field_combo.currentField()
            problem = _field_problem(labels, field)
            if problem:
                raise InputProblem(problem)
        if self.grid_report is not None and self.grid_report.verdict == "unusable":
            raise InputProblem(self.grid_report.summary)
        output = self.output_widget.filePath().strip()
        problem = output_problem(output, (".geofm",))
        if problem:
            raise InputProblem(problem)
        weights = self.weights_combo.currentData()
        if weights in FILE_KINDS:
            what = "backbone package (.geofm, from Pretrain backbone…)" if weights == "backbone" else "weights file"
            weights = self.weights_file.filePath()
            if not os.path.isfile(weights):
                raise InputProblem(f"Choose the {what}, or pick ImageNet or None as pretrained weights.")
        config = TrainConfig(
            images=[image_path], labels=[label_path], label_field=field,
            classes=self.class_table.classes() or None,
            align_labels=self.grid_report is not None and self.grid_report.verdict == "align_labels",
            weights=weights, output=output, **self.setting_values(),
            num_workers=None if sys.platform.startswith("linux") else 0,  # spawn would start QGIS itself
        )
        try:
            return config.validate()
        except GeoFMError as err:
            raise InputProblem(str(err)) from err

    def setting_values(self) -> dict:
        """The values of the schema-derived widgets, keyed by setting name."""
        return {name: value_of(self.settings[name], widget) for name, widget in self.widgets.items()}

    def remember(self) -> None:
        """Store the parameters in QgsSettings for the next session."""
        weights = self.weights_combo.currentData()
        settings.save({**self.setting_values(), "output": self.output_widget.filePath(),
                       "weights": self.weights_file.filePath() if weights in FILE_KINDS else weights})

    def accept(self) -> None:
        """Validate; on success remember the parameters, hand the config on and close."""
        try:
            config = self.config()
        except InputProblem as problem:
            push(self.bar, "Cannot train yet", str(problem))
            return
        self.remember()
        self.start_training.emit(config)
        super().accept()


def labelled_area_px(image: QgsMapLayer | None, labels: QgsMapLayer | None) -> tuple[int, int] | None:
    """Width and height in image pixels of the area image and labels share, or None."""
    if not isinstance(image, QgsRasterLayer) or labels is None or image.width() <= 0:
        return None
    extent = labels.extent()
    if labels.crs() != image.crs():
        extent = QgsCoordinateTransform(labels.crs(), image.crs(), QgsProject.instance()).transformBoundingBox(extent)
    shared = extent.intersect(image.extent())
    if shared.isEmpty():
        return None
    return (int(shared.width() / image.rasterUnitsPerPixelX()), int(shared.height() / image.rasterUnitsPerPixelY()))


def _uses_gpu(choice: str) -> bool:
    """Whether training would run on a GPU; 'auto' is known only once torch is loaded."""
    if choice in ("cuda", "mps"):
        return True
    torch = sys.modules.get("torch")
    return choice == "auto" and torch is not None and torch.cuda.is_available()


def _file_kind(path: str) -> str:
    return "backbone" if str(path).lower().endswith(".geofm") else "file"


def _field_problem(layer: QgsVectorLayer, field: str | None) -> str | None:
    """Why ``field`` cannot be the class field of ``layer`` (missing, or the file's feature id), or None."""
    index = layer.fields().indexOf(field) if field else -1
    if index < 0:
        return _no_field_text(layer, field)
    if index in layer.dataProvider().pkAttributeIndexes() and field.lower() in ID_FIELDS:
        guess = class_field_guess(layer)
        return (f"“{field}” is the feature number of “{layer.name()}” (one value per polygon), not its classes. "
                + (f"Pick the class field, e.g. “{guess}”." if guess else "Pick the field that holds the classes."))
    return None


def _no_field_text(layer: QgsVectorLayer, field: str | None) -> str:
    names = [f.name() for f in layer.fields()]
    if not names:
        return (f"“{layer.name()}” has no attribute field, so it cannot say which class each polygon is. "
                "Add a field with the class names or numbers.")
    if field:
        return f"“{layer.name()}” has no field “{field}”. Pick the class field among: {', '.join(names)}."
    return f"Pick the field of “{layer.name()}” that holds each polygon's class ({', '.join(names)})."


def _free_path(base: Path, tag: str, suffix: str) -> Path:
    """``base`` with ``tag`` and ``suffix``, numbered when taken; in the temp folder when not writable."""
    folder = base.parent if os.access(base.parent, os.W_OK) else Path(tempfile.gettempdir())
    candidate = folder / f"{base.stem}{tag}{suffix}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{base.stem}{tag}_{n}{suffix}"
    return candidate


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "layer"
