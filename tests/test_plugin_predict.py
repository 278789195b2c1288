"""The predict dialog, prediction as a QgsTask, and the styled result layers; the Model info dialog."""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer, QgsRectangle

from geofm.geofm_qgis.package_info import ModelInfoDialog, read_metadata
from geofm.geofm_qgis.result_layers import GROUP

from qgis_helpers import process_until, train_package
from rasters import write_raster


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return train_package(tmp_path_factory.mktemp("package"))


def _dialog(plugin, package_path, layer):
    dialog = plugin.open_predict()
    dialog.package_widget.setFilePath(str(package_path))
    dialog.raster_combo.setLayer(layer)
    return dialog


def _run(plugin, request):
    task = plugin.start_prediction(request)
    done = []
    task.ended.connect(done.append)
    process_until(lambda: bool(done), timeout=180)
    assert done == [True], task.error
    return task


def test_prediction_lands_as_a_paletted_layer_with_the_package_classes(plugin, package, tmp_path):
    model, image = package
    layer = QgsRasterLayer(str(image), "image")
    QgsProject.instance().addMapLayer(layer)
    dialog = _dialog(plugin, model, layer)
    summary = dialog.summary.toPlainText()
    assert "class 10" in summary and "Bands: 4" in summary and "Tile size: 64" in summary
    dialog.confidence_check.setChecked(True)
    dialog.flips_check.setChecked(True)
    dialog.output_widget.setFilePath(str(tmp_path / "classes.tif"))
    request = dialog.request()
    assert request.config.test_time_flips
    _run(plugin, request)

    meta = read_metadata(str(model))
    expected = [(float(c["value"]), c["name"], c["colour"]) for c in meta["classes"]]
    found = [lyr for lyr in QgsProject.instance().mapLayers().values()
             if isinstance(lyr, QgsRasterLayer) and isinstance(lyr.renderer(), QgsPalettedRasterRenderer)]
    assert found, "no paletted layer in the project"
    classes = [(c.value, c.label, c.color.name()) for c in found[0].renderer().classes()]
    assert classes == expected
    group = QgsProject.instance().layerTreeRoot().findGroup(GROUP)
    names = [node.name() for node in group.findLayers()]
    assert found[0].name() in names and any("confidence" in n for n in names)
    assert (tmp_path / "classes_confidence.tif").is_file()


def test_temporary_output_and_canvas_extent(plugin, package, qgis_iface):
    model, image = package
    layer = QgsRasterLayer(str(image), "image")
    QgsProject.instance().addMapLayer(layer)
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    e = layer.extent()
    canvas.setExtent(QgsRectangle(e.xMinimum(), e.yMinimum(), e.xMinimum() + e.width() / 3, e.yMinimum() + e.height() / 3))
    shown = canvas.extent()
    dialog = _dialog(plugin, model, layer)
    dialog.extent_group.button(1).setChecked(True)
    request = dialog.request()
    assert request.output.endswith("_classes.tif")
    assert request.config.bbox == pytest.approx((shown.xMinimum(), shown.yMinimum(), shown.xMaximum(), shown.yMaximum()))
    task = _run(plugin, request)
    assert task.result.summary["height"] < layer.height()


def test_band_mismatch_and_unwritable_output_are_messages(plugin, package, tmp_path):
    model, _ = package
    three = write_raster(tmp_path / "three.tif", np.zeros((3, 64, 64), dtype=np.float32))
    layer = QgsRasterLayer(str(three), "three bands")
    QgsProject.instance().addMapLayer(layer)
    dialog = _dialog(plugin, model, layer)
    dialog.accept()
    assert "needs 4 bands" in dialog.bar.currentItem().text() and dialog.isVisible()

    four = write_raster(tmp_path / "four.tif", np.zeros((4, 64, 64), dtype=np.float32))
    dialog.raster_combo.setLayer(QgsProject.instance().addMapLayer(QgsRasterLayer(str(four), "four")))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    dialog.output_widget.setFilePath(str(blocker / "out.tif"))
    dialog.accept()
    assert "not writable" in dialog.bar.currentItem().text()

    dialog.package_widget.setFilePath(str(blocker))
    shown = dialog.summary.toPlainText()
    assert shown.startswith("a-file is not a geofm model package (.geofm) or ONNX model (.onnx): choose the "
                            ".geofm file that training saved") and "zip" not in shown
    assert dialog.summary.height() < 120, "a one-line message gets a small box, not an empty one"


def test_an_output_that_is_the_input_raster_is_refused_in_the_dialog(plugin, package, tmp_path):
    model, image = package
    layer = QgsProject.instance().addMapLayer(QgsRasterLayer(str(image), "image"))
    dialog = _dialog(plugin, model, layer)
    started = []
    dialog.start_prediction.connect(started.append)
    dialog.show()
    dialog.output_widget.setFilePath(str(image))
    dialog.accept()
    assert "would overwrite the input raster" in dialog.bar.currentItem().text()
    assert dialog.isVisible() and not started


def test_the_summary_shows_every_class_row(plugin, package):
    model, image = package
    dialog = _dialog(plugin, model, QgsProject.instance().addMapLayer(QgsRasterLayer(str(image), "image")))
    dialog.show()
    summary = dialog.summary
    assert summary.verticalScrollBar().maximum() == 0, "the last class row is cut"
    assert summary.document().size().height() <= summary.viewport().height() + 1


def test_model_info_shows_the_summary(package):
    model, _ = package
    dialog = ModelInfoDialog(path=str(model))
    text = dialog.browser.toPlainText()
    assert "resnet18" in text and "class 20" in text and "mean IoU" in text


def test_a_prediction_warning_reaches_the_message_bar_and_log(plugin, package, tmp_path, qgis_iface):
    from qgis.core import Qgis, QgsApplication

    from geofm.core.config import PredictConfig
    from geofm.geofm_qgis.predict_task import PredictRequest

    model, _ = package  # trained on 10 m pixels
    coarse = write_raster(tmp_path / "coarse.tif", np.random.default_rng(0).normal(100, 5, (4, 64, 64))
                          .astype(np.float32), res=20.0)
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: logged.append((tag, text, level)))
    request = PredictRequest(str(model), str(coarse), str(tmp_path / "coarse_classes.tif"), PredictConfig(device="cpu"),
                             read_metadata(str(model))["classes"], "coarse")
    task = _run(plugin, request)
    assert any("trained on 10" in w for w in task.warnings), task.warnings
    warned = [m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning) if "trained on 10" in m]
    assert len(warned) == 1, warned
    assert any(tag == "geofm" and "trained on 10" in text and level == Qgis.MessageLevel.Warning
               for tag, text, level in logged)


def test_predict_starts_with_the_model_just_trained_and_writes_beside_the_project(plugin, package, tmp_path):
    model, image = package
    plugin.last_model = str(model)  # as a finished training leaves it
    QgsProject.instance().setFileName(str(tmp_path / "project.qgz"))
    layer = QgsRasterLayer(str(image), "image")
    QgsProject.instance().addMapLayer(layer)
    dialog = plugin.open_predict()
    assert dialog.package_widget.filePath() == str(model) and dialog.metadata is not None
    dialog.raster_combo.setLayer(layer)
    request = dialog.request()
    assert request.output == str(tmp_path / f"{image.stem}_classes.tif")  # not a temporary folder
    dialog.close()


def test_train_dialog_reopens_with_the_layers_it_had(plugin, package):
    _, image = package
    a, b = QgsRasterLayer(str(image), "image"), QgsRasterLayer(str(image), "second")
    QgsProject.instance().addMapLayers([a, b])
    dialog = plugin.open_train()
    dialog.image_combo.setLayer(b)
    dialog.reject()
    again = plugin.open_train()
    assert again.image_combo.currentLayer() is b
    again.reject()
