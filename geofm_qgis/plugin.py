"""What QGIS loads: the geofm menu and toolbar, the dependency check, tasks and the Processing provider.

Nothing here imports geofm.core at load time, so a QGIS without torch still starts cleanly.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QDialog

try:  # Qt6 (QGIS 4) has QAction in QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

from . import deps
from .messages import log, push

MENU = "&geofm"
ICONS = Path(__file__).resolve().parent / "icons"


class GeoFMPlugin:
    """Adds and removes geofm's GUI; starts training and prediction tasks."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.actions: list[QAction] = []
        self.toolbar = None
        self.provider = None
        self.missing: list[deps.Missing] = []
        self.deps_dialog: QDialog | None = None
        self.dialog: QDialog | None = None
        self.last_model = ""  # the package the last finished training wrote: Predict starts with it
        self.train_layers: tuple[str, str, str] = ("", "", "")  # image, labels layer ids and class field last chosen
        self.tasks: list[Any] = []  # running tasks only
        self.dock = None  # the "geofm training" dock: every training and pretraining run of the session
        self.deps_folder = deps.deps_dir(QgsApplication.qgisSettingsDirPath())
        deps.add_deps_dir(self.deps_folder)

    # -- QGIS API ----------------------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        """Menu under Raster and toolbar; the dependency check; the Processing provider when it passes."""
        self.toolbar = self.iface.addToolBar("geofm")
        self.toolbar.setObjectName("geofmToolbar")
        for text, slot, icon in (("Train model…", self.open_train, "train"), ("Predict…", self.open_predict, "predict"),
                                 ("Model info…", self.open_info, "info"),
                                 ("Pretrain backbone…", self.open_pretrain, "pretrain")):
            action = QAction(QIcon(str(ICONS / f"{icon}.svg")), text, self.iface.mainWindow())
            action.setObjectName(f"geofm{text.split()[0]}")
            action.triggered.connect(slot)
            self.iface.addPluginToRasterMenu(MENU, action)
            self.toolbar.addAction(action)
            self.actions.append(action)
        if self.check_dependencies():
            self.initProcessing()

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name (qgis_process calls it without initGui)
        """Register the Processing algorithms, once, when the engine's dependencies are there."""
        if self.provider is not None or deps.missing_dependencies():
            return
        from .processing_provider import GeoFMProvider

        self.provider = GeoFMProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def unload(self) -> None:
        """Remove everything initGui added; running tasks are cancelled."""
        for task in list(self.tasks):
            task.cancel()
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
        self.actions.clear()
        if self.dock is not None:
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # -- dependencies ------------------------------------------------------------------------------------------
    def check_dependencies(self) -> bool:
        """True when torch, torchvision and rasterio are usable; else show the dependency dialog."""
        self.missing = deps.missing_dependencies()
        if not self.missing:
            return True
        names = ", ".join(m.module for m in self.missing)
        if deps.engine_mode() == deps.PREDICT_ONLY:  # a deliberate light install: no dialog at every start
            log(f"predict-only mode: .onnx models predict with onnxruntime; training needs {names}")
            return False
        log(f"missing or unusable: {names}", Qgis.MessageLevel.Warning)
        self.show_dependency_dialog()
        return False

    def show_dependency_dialog(self) -> QDialog:
        """The non-blocking dialog that offers to install what is missing."""
        from .deps_dialog import DependencyDialog

        if self.deps_dialog is None:
            self.deps_dialog = DependencyDialog(self.missing, self.deps_folder, self.iface.mainWindow())
        self.deps_dialog.show()
        self.deps_dialog.raise_()
        return self.deps_dialog

    def _engine_ready(self, predict_only_ok: bool = False) -> bool:
        """True when the engine can run (with ``predict_only_ok``: when .onnx models can, without torch)."""
        if self.missing and deps.missing_dependencies():
            if predict_only_ok and deps.engine_mode() == deps.PREDICT_ONLY:
                return True
            self.show_dependency_dialog()
            return False
        self.missing = []
        return True

    # -- actions -----------------------------------------------------------------------------------------------
    def open_train(self) -> QDialog | None:
        """Open the train dialog; its config starts a training task."""
        if not self._engine_ready():
            return None
        from .train_dialog import TrainDialog

        self.dialog = TrainDialog(self.iface, self.iface.mainWindow())
        self.dialog.restore_layers(*self.train_layers)
        self.dialog.start_training.connect(self.start_training)
        self.dialog.finished.connect(lambda _r, d=self.dialog: setattr(self, "train_layers", d.chosen_layers()))
        self.dialog.show()
        return self.dialog

    def open_pretrain(self) -> QDialog | None:
        """Open the pretrain dialog; its config starts a pretraining task with the same live panel as training."""
        if not self._engine_ready():
            return None
        from .pretrain_dialog import PretrainDialog

        self.dialog = PretrainDialog(self.iface, self.iface.mainWindow())
        self.dialog.start_pretraining.connect(self.start_pretraining)
        self.dialog.show()
        return self.dialog

    def open_predict(self, package: str = "") -> QDialog | None:
        """Open the predict dialog with ``package`` (else the last trained model); its request starts a prediction
        task (with onnxruntime alone, .onnx models)."""
        if not self._engine_ready(predict_only_ok=True):
            return None
        from .predict_dialog import PredictDialog

        self.dialog = PredictDialog(self.iface, self.iface.mainWindow())
        package = package or self.last_model
        if package and Path(package).is_file():
            self.dialog.package_widget.setFilePath(package)
        self.dialog.start_prediction.connect(self.start_prediction)
        self.dialog.show()
        return self.dialog

    def open_info(self) -> QDialog:
        """Open the Model info dialog (needs no torch: it reads the package's metadata)."""
        from .package_info import ModelInfoDialog

        self.dialog = ModelInfoDialog(self.iface.mainWindow())
        self.dialog.show()
        return self.dialog

    # -- tasks -------------------------------------------------------------------------------------------------
    def start_training(self, config) -> Any:
        """Run ``train(config)`` as a task followed in the training dock; its warnings go to the message bar."""
        return self._start_job("train", config, "training", "Training", "model")

    def start_pretraining(self, config) -> Any:
        """Run ``pretrain(config)`` as a task followed in the training dock (the events are training's)."""
        return self._start_job("pretrain", config, "pretraining", "Pretraining", "backbone")

    def _restart(self, kind: str, config) -> Any:
        """The dock's Continue and Resume: a new run of the same kind."""
        return self.start_pretraining(config) if kind == "pretraining" else self.start_training(config)

    def _start_job(self, module: str, config, verb: str, what: str, saved: str) -> Any:
        """Run ``geofm.core.<module>.<module>(config, cancel)`` as a task, added to the training dock."""
        from .engine_task import EngineTask, preload
        from .training_dock import TrainingDock

        preload(module)  # torch loads on the main thread; the worker's import below is a lookup

        def job(cancel):
            engine = importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.core.{module}")
            return getattr(engine, module)(config, cancel)

        task = EngineTask(f"geofm: {verb} {Path(config.output).name}", job, self.iface.messageBar())
        if self.dock is None:
            self.dock = TrainingDock(self.open_predict, self._restart, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.add_run(task, config, verb)
        task.ended.connect(lambda ok: self._training_ended(task, ok, what, saved))
        self._track(task)
        QgsApplication.taskManager().addTask(task)
        return task

    def _track(self, task) -> None:
        """Keep ``task`` while it runs (for unload to cancel it); QGIS deletes it once it has ended."""
        self.tasks.append(task)
        task.ended.connect(lambda _ok: self.tasks.remove(task))

    def _training_ended(self, task, ok: bool, what: str = "Training", saved: str = "model") -> None:  # noqa: FBT001
        bar = self.iface.messageBar()
        if ok:
            if saved == "model":
                self.last_model = task.result.path
            push(bar, "geofm", f"{what} finished: the {saved} is saved to {task.result.path}.",
                 Qgis.MessageLevel.Success, 10)
        elif task.cancelled:
            kept = getattr(task.result, "message", "") if type(task.result).__name__ == "CancelledEvent" else ""
            push(bar, "geofm", kept or f"{what} cancelled.", Qgis.MessageLevel.Info, 10)
        elif task.error:
            push(bar, f"{what} failed", task.error, Qgis.MessageLevel.Critical)

    def start_prediction(self, request) -> Any:
        """Run a prediction task; its layers are added when it ends (main thread)."""
        from .predict_task import prediction_task

        task = prediction_task(request, self.iface.messageBar())
        self._track(task)
        QgsApplication.taskManager().addTask(task)
        return task
