"""Pretraining in QGIS: the dialog (layers, time budget and its estimate), the task with the live training panel,
the 'geofm:pretrain' algorithm, and the train dialog's "My pretrained backbone…" choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingFeedback, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt

from geofm.geofm_qgis.messages import InputProblem

from qgis_helpers import process_until
from rasters import separable_scene, write_raster


def _raster(path: Path, seed: int = 0) -> Path:
    data = np.random.default_rng(seed).normal(1000, 100, (3, 96, 96)).astype(np.float32)
    return write_raster(path, data)


def _add(path: Path, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def _tiny(dialog, tmp_path) -> None:
    from geofm.geofm_qgis.setting_widgets import set_value

    for name, value in (("minutes", 0.0), ("crop_size", 32), ("batch_size", 2), ("device", "cpu"),
                        ("steps_per_epoch", 2)):
        set_value(dialog.settings[name], dialog.widgets[name], value)
    dialog.output_widget.setFilePath(str(tmp_path / "bb.geofm"))


def test_dialog_ticks_layers_and_every_dialog_setting_reaches_the_config(plugin, tmp_path):
    from geofm.core.config import PretrainConfig
    from geofm.core.schema import settings_of

    _add(_raster(tmp_path / "a.tif"), "a")
    _add(_raster(tmp_path / "b.tif", 1), "b")
    dialog = plugin.open_pretrain()
    assert dialog.layer_list.count() == 2 and dialog.widgets["minutes"].value() == 10
    assert dialog.widgets["minutes"].text() == "10.0 min", "a time budget reads as minutes, not 10.0000"
    dialog.layer_list.item(1).setCheckState(Qt.CheckState.Checked)
    _tiny(dialog, tmp_path)
    dialog.widgets["licence"].setText("CC-BY-4.0")
    config = dialog.config()
    assert len(config.images) == 2 and config.crop_size == 32 and config.licence == "CC-BY-4.0"
    assert {s.name for s in settings_of(PretrainConfig) if s.exposed("dialog")} == set(dialog.widgets) | {
        "images", "bbox", "bbox_crs", "output"}
    for i in range(2):
        dialog.layer_list.item(i).setCheckState(Qt.CheckState.Unchecked)
    with pytest.raises(InputProblem, match="at least one raster layer .or add a folder"):
        dialog.config()
    dialog.close()


def test_the_estimate_says_what_the_budget_buys(plugin, tmp_path):
    _add(_raster(tmp_path / "a.tif"), "a")
    dialog = plugin.open_pretrain()
    _tiny(dialog, tmp_path)
    dialog.widgets["minutes"].setValue(5)
    text = dialog.estimate()
    assert "s per step" in text and "5 min buy about" in text and "epoch(s)" in text
    dialog.close()


def test_pretraining_task_runs_with_the_live_panel(plugin, tmp_path):
    _add(_raster(tmp_path / "a.tif"), "a")
    dialog = plugin.open_pretrain()
    _tiny(dialog, tmp_path)
    config = dialog.config()
    dialog.close()
    config.epochs = 2
    task = plugin.start_pretraining(config)
    panel = plugin.dock.views[-1]
    done = []
    task.ended.connect(done.append)
    process_until(lambda: bool(done), timeout=300)
    assert done == [True], task.error
    assert len(panel.epochs) == 2 and panel.steps and panel.progress.value() == 100
    assert "2 epoch(s) done" in panel.summary.text() and "bb.geofm" in panel.summary.text()
    # its chart says why there is no validation score, rather than showing an empty plot and legend entry
    assert not panel.miou_axes.get_visible() and "self-supervised" in panel.loss_axes.get_title()
    assert panel.cancel_button.text() == "Cancel pretraining"
    assert "validation loss" not in [t.get_text() for t in panel.loss_axes.get_legend().get_texts()]
    # its end card offers what applies to a backbone: continuing it, not predicting nor a confusion matrix
    assert panel.predict_button.isHidden() and panel.matrix_button.isHidden()
    assert not panel.continue_row.isHidden() and panel.continue_button.isEnabled()
    assert Path(config.output).is_file()


def test_pretrain_algorithm_writes_a_backbone(plugin, qgis_processing, tmp_path):
    import processing

    from geofm.core.package import load_backbone_package

    image = _raster(tmp_path / "a.tif")
    result = processing.run("geofm:pretrain", {
        "IMAGES": [str(image)], "BACKBONE": "resnet18", "EPOCHS": 1, "STEPS_PER_EPOCH": 1, "CROP_SIZE": 32,
        "BATCH_SIZE": 2, "DEVICE": "cpu", "LICENCE": "CC0-1.0", "OUTPUT": str(tmp_path / "bb.geofm")},
        feedback=QgsProcessingFeedback())
    backbone = load_backbone_package(result["OUTPUT"])
    assert backbone.in_channels == 3 and backbone.licence == "CC0-1.0"


def test_dialog_takes_a_folder_of_rasters_and_an_extent(plugin, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle

    _add(_raster(tmp_path / "a.tif"), "a")
    folder = tmp_path / "dates"
    folder.mkdir()
    _raster(folder / "2019.tif", 1), _raster(folder / "2020.tif", 2)
    dialog = plugin.open_pretrain()
    _tiny(dialog, tmp_path)
    assert dialog.extent_widget.isValid() is False, "the whole images until an extent is chosen"
    dialog.add_folder(str(folder))
    assert dialog.layer_list.item(1).text() == "dates/ — folder of 2 rasters, 3 bands"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no rasters here")
    dialog.add_folder(str(tmp_path / "notes"))  # not a folder of rasters: refused in the bar, nothing added
    assert dialog.layer_list.count() == 2
    assert "holds no raster file" in dialog.bar.currentItem().text()
    utm = QgsCoordinateReferenceSystem("EPSG:32633")
    dialog.extent_widget.setOutputExtentFromUser(QgsRectangle(500_000, 5_999_520, 500_480, 6_000_000), utm)
    config = dialog.config()
    assert config.images == [str(tmp_path / "a.tif"), str(folder / "2019.tif"), str(folder / "2020.tif")]
    assert config.bbox == (500_000, 5_999_520, 500_480, 6_000_000)
    assert QgsCoordinateReferenceSystem.fromWkt(config.bbox_crs).authid() == "EPSG:32633"
    write_raster(folder / "labels.tif", np.ones((96, 96), dtype=np.uint8))  # a class raster among the images
    dialog.layer_list.takeItem(1)
    dialog.add_folder(str(folder))
    with pytest.raises(InputProblem, match="same bands in every image.*1 or 3 bands"):
        dialog.config()
    dialog.close()


def test_pretrain_algorithm_takes_a_folder_and_an_extent(plugin, qgis_processing, tmp_path):
    import processing

    from geofm.core.package import load_backbone_package

    folder = tmp_path / "scenes"
    folder.mkdir()
    _raster(folder / "a.tif")
    result = processing.run("geofm:pretrain", {
        "FOLDER": str(folder), "EXTENT": "500000,500480,5999520,6000000 [EPSG:32633]", "EPOCHS": 1,
        "STEPS_PER_EPOCH": 1, "CROP_SIZE": 32, "BATCH_SIZE": 2, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "bb.geofm")},
        feedback=QgsProcessingFeedback())
    files = load_backbone_package(result["OUTPUT"]).metadata["trained_on"]["files"]
    assert [(f["name"], f["window"]) for f in files] == [("a.tif", [0, 0, 48, 48])]


def test_pretrain_algorithm_without_layers_or_folder_says_so(plugin, qgis_processing, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="raster layers to pretrain on, or a folder"):
        processing.run("geofm:pretrain", {"EPOCHS": 1, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "bb.geofm")},
                       feedback=QgsProcessingFeedback())


def test_train_dialog_offers_my_pretrained_backbone(plugin, tmp_path):
    img, lbl = separable_scene(tmp_path, size=96)
    dialog = plugin.open_train()
    dialog.image_combo.setLayer(_add(img, "image"))
    dialog.label_combo.setLayer(_add(lbl, "labels"))
    dialog.tile_spin.setValue(64)
    dialog.weights_combo.setCurrentIndex(dialog.weights_combo.findData("backbone"))
    assert dialog.weights_file.filter() == "geofm backbone package (*.geofm)"
    assert not dialog.weights_file.isHidden()
    dialog.output_widget.setFilePath(str(tmp_path / "m.geofm"))
    with pytest.raises(InputProblem, match="backbone package"):
        dialog.config()
    backbone = tmp_path / "bb.geofm"
    backbone.write_bytes(b"")  # the dialog checks the file exists; the engine checks what it holds
    dialog.weights_file.setFilePath(str(backbone))
    assert dialog.config().weights == str(backbone)
    dialog.remember()
    dialog.close()
    again = plugin.open_train()
    assert again.weights_combo.currentData() == "backbone" and again.weights_file.filePath() == str(backbone)
    again.close()


def test_model_info_says_a_backbone_is_a_backbone(plugin, tmp_path):
    from geofm.core.config import PretrainConfig
    from geofm.core.pretrain import pretrain

    config = PretrainConfig(images=[str(_raster(tmp_path / "a.tif"))], epochs=1, steps_per_epoch=1, batch_size=2,
                            crop_size=32, device="cpu", num_workers=0, licence="CC0-1.0",
                            output=str(tmp_path / "bb.geofm"))
    list(pretrain(config))
    dialog = plugin.open_info()
    dialog.file_widget.setFilePath(config.output)
    text = dialog.browser.toPlainText()
    assert "Pretrained backbone" in text and "3 " not in text.split("Bands:")[0] and "CC0-1.0" in text
    assert not dialog.export_button.isEnabled()
    dialog.close()


def test_dialog_ticks_the_image_not_the_class_raster_above_it(plugin, tmp_path):
    """Labels or a prediction above the image in the Layers panel are listed, with their band counts, but the
    image is what is ticked at first."""
    _add(_raster(tmp_path / "image.tif"), "image")
    classes = write_raster(tmp_path / "classes.tif", np.ones((96, 96), dtype=np.uint8))
    _add(classes, "classes")
    dialog = plugin.open_pretrain()
    items = {dialog.layer_list.item(i).text(): dialog.layer_list.item(i).checkState() for i in range(2)}
    assert items == {"image (3 bands)": Qt.CheckState.Checked, "classes (1 band)": Qt.CheckState.Unchecked}
    assert dialog.images() == [str(tmp_path / "image.tif")]
    dialog.close()


def test_dialog_says_two_dates_need_simsiam(plugin, tmp_path):
    from geofm.geofm_qgis.setting_widgets import set_value

    _add(_raster(tmp_path / "a.tif"), "a")
    _add(_raster(tmp_path / "b.tif", 1), "b")
    dialog = plugin.open_pretrain()
    for i in range(2):
        dialog.layer_list.item(i).setCheckState(Qt.CheckState.Checked)
    _tiny(dialog, tmp_path)
    set_value(dialog.settings["temporal_pairs"], dialog.widgets["temporal_pairs"], True)
    with pytest.raises(InputProblem, match="SimSiam setting"):
        dialog.config()
    set_value(dialog.settings["method"], dialog.widgets["method"], "simsiam")
    assert dialog.config().temporal_pairs and dialog.config().method == "simsiam"
    dialog.close()
