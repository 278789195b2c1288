#!/usr/bin/env python3
"""Screenshots of the train dialog, the live training panel and a styled prediction, for the README.

Run under a virtual X server:  xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py
Trains a small model on the bundled real scene (CPU, about a minute) and writes PNGs to docs/screenshots/.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from unittest.mock import MagicMock

REPO = Path(__file__).resolve().parent.parent
SCENE = REPO / "data" / "nc_landsat7"
OUT = REPO / "docs" / "screenshots"
#: landclass96 classes of the NC scene (see data/nc_landsat7/ATTRIBUTION.md), with map-like colours.
CLASSES = [(1, "developed", "#d7301f"), (2, "agriculture", "#f6e8a0"), (3, "herbaceous", "#b8e186"),
           (4, "shrubland", "#7fbc41"), (5, "forest", "#1b7837"), (6, "water", "#2c7fb8"), (7, "sediment", "#bf9b6f")]


DEMO_MODEL = REPO / "outputs" / "demo" / "model.geofm"


def wait(condition, timeout: float = 900.0) -> None:
    from qgis.PyQt.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        QCoreApplication.processEvents()
        time.sleep(0.02)


def settle(seconds: float = 0.5) -> None:
    wait_until = time.monotonic() + seconds
    wait(lambda: time.monotonic() > wait_until)


def main() -> None:
    sys.path.insert(0, str(REPO.parent))
    from qgis.core import QgsApplication, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer

    app = QgsApplication([], True)
    app.initQgis()
    from qgis.core import QgsLayerTreeModel
    from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsLayerTreeView, QgsMapCanvas, QgsMessageBar
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QColor
    from qgis.PyQt.QtWidgets import QMainWindow, QSplitter

    from geofm.geofm_qgis.engine_task import EngineTask
    from geofm.geofm_qgis.predict_task import PredictRequest, prediction_task
    from geofm.geofm_qgis.train_dialog import TrainDialog
    from geofm.geofm_qgis.training_dock import TrainingDock

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="geofm-shots-"))
    project = QgsProject.instance()
    image = QgsRasterLayer(str(SCENE / "landsat_multiband.tif"), "Landsat 7 (2000)")
    labels = QgsRasterLayer(str(SCENE / "strata.tif"), "land cover (landclass96)")
    labels.setRenderer(QgsPalettedRasterRenderer(labels.dataProvider(), 1, [
        QgsPalettedRasterRenderer.Class(v, QColor(c), n) for v, n, c in CLASSES]))
    project.addMapLayers([labels, image])

    window = QMainWindow()
    window.setWindowTitle("QGIS — geofm")
    canvas = QgsMapCanvas()
    canvas.setCanvasColor(QColor("white"))
    tree = QgsLayerTreeView()
    model = QgsLayerTreeModel(project.layerTreeRoot())
    model.setFlag(QgsLayerTreeModel.Flag.AllowNodeChangeVisibility)
    tree.setModel(model)
    bridge = QgsLayerTreeMapCanvasBridge(project.layerTreeRoot(), canvas)
    splitter = QSplitter()
    splitter.addWidget(tree)
    splitter.addWidget(canvas)
    splitter.setSizes([300, 900])
    window.setCentralWidget(splitter)
    window.resize(1500, 900)
    canvas.setDestinationCrs(image.crs())
    canvas.setExtent(image.extent())
    window.show()

    iface = MagicMock()
    iface.mainWindow.return_value = window
    iface.mapCanvas.return_value = canvas
    iface.messageBar.return_value = QgsMessageBar()

    dialog = TrainDialog(iface, window)
    dialog.image_combo.setLayer(image)
    dialog.label_combo.setLayer(labels)
    dialog.backbone_combo.setCurrentIndex(dialog.backbone_combo.findData("resnet18"))
    dialog.weights_combo.setCurrentIndex(dialog.weights_combo.findData("none"))
    dialog.tile_spin.setValue(64)
    dialog.epochs_spin.setValue(4)
    dialog.output_widget.setFilePath(str(work / "landcover.geofm"))
    dialog.show()
    settle(1.0)
    dialog.grab().save(str(OUT / "train_dialog.png"))
    config = dialog.config()
    config.split_block = 128
    dialog.close()

    def job(cancel):
        from geofm.core.train import train

        return train(config, cancel)

    task = EngineTask("geofm: training", job)
    panel = TrainingDock(lambda _path: None, lambda _kind, _config: None, window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, panel)
    panel.setMinimumWidth(460)
    view = panel.add_run(task, config, "training")
    ended = []
    task.ended.connect(ended.append)
    QgsApplication.taskManager().addTask(task)
    wait(lambda: len(view.epochs) >= 2 or bool(ended))
    settle(1.0)
    window.grab().save(str(OUT / "live_panel.png"))
    wait(lambda: bool(ended))
    if not ended[0]:
        raise SystemExit(f"training failed: {task.error}")
    settle(0.5)
    panel.grab().save(str(OUT / "training_summary.png"))

    from geofm.core.config import PredictConfig

    # The styled prediction shows the `make demo` model when there is one (30 epochs); else this short run's.
    package = DEMO_MODEL if DEMO_MODEL.is_file() else Path(config.output)
    request = PredictRequest(str(package), str(SCENE / "landsat_multiband.tif"), str(work / "landcover.tif"),
                             PredictConfig(confidence=True), [
                                 {"value": v, "name": n, "colour": c} for v, n, c in CLASSES],
                             "land cover — predicted")
    predicted = prediction_task(request, iface.messageBar())
    done = []
    predicted.ended.connect(done.append)
    QgsApplication.taskManager().addTask(predicted)
    wait(lambda: bool(done))
    if not done[0]:
        raise SystemExit(f"prediction failed: {predicted.error}")
    project.layerTreeRoot().findLayer(labels.id()).setItemVisibilityChecked(False)
    project.layerTreeRoot().findLayer(image.id()).setItemVisibilityChecked(False)
    for layer in predicted.layers[1:]:
        project.layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(False)
    panel.hide()
    tree.expandAll()
    canvas.refreshAllLayers()
    settle(2.0)
    wait(lambda: not canvas.isDrawing())
    window.grab().save(str(OUT / "prediction.png"))
    del bridge
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
