"""The train dialog on real layers, and training as a QgsTask with its live panel, while the UI keeps running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from geofm.geofm_qgis.messages import InputProblem

from qgis_helpers import Heartbeat, process_until
from rasters import separable_scene


def _add(layer):
    assert layer.isValid(), layer.source()
    QgsProject.instance().addMapLayer(layer)
    return layer


def _dialog(plugin, image, labels, field: str | None = None):
    dialog = plugin.open_train()
    dialog.image_combo.setLayer(image)
    dialog.label_combo.setLayer(labels)
    if field:
        dialog.field_combo.setField(field)
    return dialog


def _bar_text(dialog) -> str:
    item = dialog.bar.currentItem()
    return item.text() if item is not None else ""


def test_scene_grid_verdict_and_classes(plugin, scene_image, scene_labels):
    image = _add(QgsRasterLayer(str(scene_image), "landsat"))
    labels = _add(QgsRasterLayer(str(scene_labels), "strata"))
    dialog = _dialog(plugin, image, labels)
    assert dialog.grid_report is not None
    assert dialog.grid_report.verdict == "aligned"
    text = dialog.grid_label.text()
    assert "EPSG:32119" in text and "EPSG:3358" in text and "line up" in text
    assert [c["value"] for c in dialog.class_table.classes()] == [1, 2, 3, 4, 5, 6, 7]
    assert not dialog.align_button.isVisible()
    dialog.close()


def test_shifted_labels_can_be_aligned_with_one_button(plugin, tmp_path):
    img, _ = separable_scene(tmp_path, size=96)
    import numpy as np

    from rasters import write_raster

    shifted = write_raster(tmp_path / "shifted.tif", np.full((96, 96), 1, dtype=np.uint8),
                           origin=(500_005.0, 6_000_000.0))
    dialog = _dialog(plugin, _add(QgsRasterLayer(str(img), "image")), _add(QgsRasterLayer(str(shifted), "shifted")))
    dialog.tile_spin.setValue(64)
    assert dialog.grid_report.verdict == "align_labels"
    assert not dialog.align_button.isHidden()
    dialog.align_button.click()  # as the user does: nothing but the dialog keeps the task
    import gc

    gc.collect()
    process_until(lambda: dialog.label_combo.currentLayer().name() == "shifted_aligned", timeout=60)
    assert dialog.grid_report.verdict == "aligned"
    assert (tmp_path / "shifted_aligned.tif").is_file()
    dialog.close()


def test_first_state_never_offers_the_image_as_its_own_labels(plugin, tmp_path):
    import numpy as np

    from rasters import write_raster

    img, _ = separable_scene(tmp_path, size=128)
    image = _add(QgsRasterLayer(str(img), "image"))
    dialog = plugin.open_train()
    assert dialog.label_combo.currentLayer() is None  # the only raster is the image: no labels chosen yet
    assert "ready" not in dialog.grid_label.text()
    dialog.close()
    dialog = _dialog(plugin, image, image)
    assert "is the image itself" in dialog.grid_label.text() and dialog.class_table.classes() == []
    with pytest.raises(InputProblem, match="image itself"):
        dialog.config()
    imagery = _add(QgsRasterLayer(str(write_raster(tmp_path / "float.tif",
                                                   np.random.default_rng(0).random((1, 64, 64), np.float32))), "f"))
    dialog.label_combo.setLayer(imagery)
    assert "swap image and labels" in dialog.grid_label.text() and "ready" not in dialog.grid_label.text()
    dialog.close()


def test_class_field_is_never_an_id(plugin, tmp_path, scene_image):
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsVectorFileWriter
    from qgis.PyQt.QtCore import QVariant

    memory = QgsVectorLayer("Polygon?crs=EPSG:32119", "mem", "memory")
    memory.dataProvider().addAttributes([QgsField("id", QVariant.Int), QgsField("area", QVariant.Double),
                                         QgsField("class_name", QVariant.String)])
    memory.updateFields()
    for i, name in enumerate(("water", "forest", "water")):
        feature = QgsFeature(memory.fields())
        feature.setAttributes([i, 1.0, name])
        feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({i} 0, {i} 1, {i + 1} 1, {i + 1} 0, {i} 0))"))
        memory.dataProvider().addFeature(feature)
    path = str(tmp_path / "labels.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    QgsVectorFileWriter.writeAsVectorFormatV2(memory, path, QgsProject.instance().transformContext(), options)
    polygons = _add(QgsVectorLayer(path, "labels", "ogr"))
    assert polygons.fields().names()[0] == "fid"
    dialog = _dialog(plugin, _add(QgsRasterLayer(str(scene_image), "landsat")), polygons)
    assert dialog.field_combo.currentField() == "class_name"
    dialog.field_combo.setField("fid")  # picked by hand: refused before the dialog closes, with the right field
    dialog.accept()
    assert "“fid” is the feature number" in _bar_text(dialog) and "“class_name”" in _bar_text(dialog)
    assert dialog.isVisible()
    dialog.close()


def test_symbology_gives_class_names_and_colours(plugin, scene_image, scene_labels, scene_polygons):
    image = _add(QgsRasterLayer(str(scene_image), "landsat"))
    labels = _add(QgsRasterLayer(str(scene_labels), "strata"))
    labels.setRenderer(QgsPalettedRasterRenderer(labels.dataProvider(), 1, [
        QgsPalettedRasterRenderer.Class(1, QColor("#ff0000"), "developed"),
        QgsPalettedRasterRenderer.Class(6, QColor("#0000ff"), "water")]))
    dialog = _dialog(plugin, image, labels)
    assert dialog.class_table.classes() == [{"value": 1, "name": "developed", "colour": "#ff0000"},
                                            {"value": 6, "name": "water", "colour": "#0000ff"}]
    polygons = _add(QgsVectorLayer(str(scene_polygons), "polygons", "ogr"))
    water = QgsFillSymbol.createSimple({"color": "#1e88e5"})
    polygons.setRenderer(QgsCategorizedSymbolRenderer("label", [QgsRendererCategory("water", water, "Open water")]))
    dialog.label_combo.setLayer(polygons)
    dialog.field_combo.setField("label")
    classes = dialog.class_table.classes()
    assert [c["name"] for c in classes][:2] == ["agriculture", "developed"] and len(classes) == 7
    assert {"value": 7, "name": "water", "colour": "#1e88e5"} in classes  # the name is the field's text
    assert "line up" in dialog.grid_label.text() and "reprojected" in dialog.grid_label.text()
    dialog.close()


def test_non_file_raster_gets_an_export_offer(plugin, scene_image, scene_labels, tmp_path):
    source = _add(QgsRasterLayer(str(scene_image), "landsat"))
    uri = (f"?crs=EPSG:32119&extent={source.extent().xMinimum()},{source.extent().yMinimum()},"
           f"{source.extent().xMaximum()},{source.extent().yMaximum()}&width=489&height=443"
           f"&formula=%22landsat@1%22&landsat:uri={scene_image}&landsat:provider=gdal")
    virtual = _add(QgsRasterLayer(uri, "virtual", "virtualraster"))
    dialog = _dialog(plugin, virtual, _add(QgsRasterLayer(str(scene_labels), "strata")))
    dialog.accept()
    assert "not a file on disk" in _bar_text(dialog) and "Export" in _bar_text(dialog)
    assert not dialog.export_button.isHidden()
    exported = str(tmp_path / "virtual.tif")
    _export(dialog, exported)
    assert dialog.image_combo.currentLayer().source() == exported
    assert dialog.grid_report is not None
    assert "saved" in _bar_text(dialog)


def _export(dialog, target: str) -> None:
    """Export the dialog's image layer to ``target`` and wait for the task and its message."""
    from qgis.core import QgsTask

    task = dialog.export_image(target)
    assert task is not None, _bar_text(dialog)
    process_until(lambda: task.status() in (QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated)
                  and dialog.export_button.isEnabled(), timeout=120)


def _xyz_tiles(folder: Path, around: QgsRasterLayer, zoom: int) -> str:
    """Tiles of the XYZ (web mercator) scheme at ``zoom`` covering ``around``, written as solid-colour PNGs; the
    template a QGIS XYZ layer reads them through (file://, so no network)."""
    import math

    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform
    from qgis.PyQt.QtGui import QImage

    wgs84 = QgsCoordinateTransform(around.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    box = wgs84.transformBoundingBox(around.extent())

    def tile(lon, lat):
        n = 2 ** zoom
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        return int((lon + 180) / 360 * n), int(y)

    (x0, y0), (x1, y1) = tile(box.xMinimum(), box.yMaximum()), tile(box.xMaximum(), box.yMinimum())
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            image = QImage(256, 256, QImage.Format.Format_RGB32)
            image.fill(QColor(40 + 20 * (x - x0), 120, 40 + 20 * (y - y0)))
            (folder / str(zoom) / str(x)).mkdir(parents=True, exist_ok=True)
            assert image.save(str(folder / str(zoom) / str(x) / f"{y}.png"))
    return f"type=xyz&url=file://{folder}/{{z}}/{{x}}/{{y}}.png&zmin={zoom}&zmax={zoom}"


def test_web_layer_exports_over_the_labels_in_their_crs(plugin, scene_labels, tmp_path):
    """An XYZ layer (EPSG:3857, no pixels of its own) is exported over the label raster's extent, in its CRS and
    at its resolution — not over the map view's numbers read in the wrong CRS (which landed off Africa)."""
    import rasterio

    labels = _add(QgsRasterLayer(str(scene_labels), "strata"))
    xyz = _add(QgsRasterLayer(_xyz_tiles(tmp_path / "tiles", labels, 13), "tiles", "wms"))
    dialog = _dialog(plugin, xyz, labels)
    target = tmp_path / "chosen folder" / "tiles.tif"
    target.parent.mkdir()
    _export(dialog, str(target))
    assert "saved" in _bar_text(dialog) and "EPSG:3358" in _bar_text(dialog), _bar_text(dialog)
    assert dialog.image_combo.currentLayer().source() == str(target)
    with rasterio.open(target) as out, rasterio.open(scene_labels) as ref:
        assert out.crs.to_epsg() == 3358
        assert out.res == pytest.approx(ref.res)
        assert all(abs(a - b) <= ref.res[0] for a, b in zip(out.bounds, ref.bounds)), (out.bounds, ref.bounds)
        assert out.read(1).any()


def test_blank_web_export_is_a_warning_not_saved(plugin, scene_labels, tmp_path):
    labels = _add(QgsRasterLayer(str(scene_labels), "strata"))
    (tmp_path / "no tiles").mkdir()
    offline = f"type=xyz&url=file://{tmp_path / 'no tiles'}/{{z}}/{{x}}/{{y}}.png&zmin=13&zmax=13"
    xyz = _add(QgsRasterLayer(offline, "offline tiles", "wms"))
    dialog = _dialog(plugin, xyz, labels)
    _export(dialog, str(tmp_path / "blank.tif"))
    text = _bar_text(dialog)
    assert "blank" in text and "saved" not in text and "Exported" not in text, text
    assert len(dialog.bar.items()) == 1  # the outcome replaced the "Exporting…" note
    assert dialog.image_combo.currentLayer() is xyz


def test_polygons_without_the_field_and_unwritable_output(plugin, scene_image, scene_polygons, tmp_path):
    from osgeo import ogr

    bare = tmp_path / "bare.geojson"
    bare.write_text('{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:32119"}},'
                    '"features":[{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":'
                    '[[[631000,216000],[632000,216000],[632000,217000],[631000,216000]]]}}]}')
    assert ogr.Open(str(bare)) is not None
    image = _add(QgsRasterLayer(str(scene_image), "landsat"))
    dialog = _dialog(plugin, image, _add(QgsVectorLayer(str(bare), "bare", "ogr")))
    dialog.accept()
    assert "has no attribute field" in _bar_text(dialog)

    dialog.label_combo.setLayer(_add(QgsVectorLayer(str(scene_polygons), "polygons", "ogr")))
    dialog.field_combo.setField("")
    dialog.accept()
    assert "Pick the field" in _bar_text(dialog)

    dialog.field_combo.setField("label")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    dialog.output_widget.setFilePath(str(blocker / "model.geofm"))
    dialog.accept()
    assert "not writable" in _bar_text(dialog)
    assert dialog.isVisible()

    dialog.output_widget.setFilePath(str(tmp_path / "no-such-folder" / "model.geofm"))
    dialog.accept()  # refused before the dialog closes, not after an epoch of training
    assert "no-such-folder does not exist" in _bar_text(dialog) and dialog.isVisible()


def _train_config(plugin, tmp_path, name: str, size: int = 256, epochs: int = 1):
    folder = tmp_path / name
    folder.mkdir()
    img, lbl = separable_scene(folder, size=size)
    dialog = _dialog(plugin, _add(QgsRasterLayer(str(img), f"{name} image")),
                     _add(QgsRasterLayer(str(lbl), f"{name} labels")))
    w = dialog.widgets
    w["backbone"].setCurrentIndex(w["backbone"].findData("resnet18"))
    dialog.weights_combo.setCurrentIndex(dialog.weights_combo.findData("none"))
    w["tile_size"].setValue(64)
    w["batch_size"].setValue(8)
    w["epochs"].setValue(epochs)
    w["val_fraction"].setValue(25)
    dialog.output_widget.setFilePath(str(folder / "model.geofm"))
    config = dialog.config()
    dialog.close()
    assert config.tile_size == 64 and config.weights == "none" and config.stride == 32
    return config, folder


def test_training_task_completes_while_the_ui_keeps_running(plugin, tmp_path):
    config, folder = _train_config(plugin, tmp_path, "one", epochs=2)
    heartbeat = Heartbeat()
    task = plugin.start_training(config)
    panel = plugin.dock.views[-1]
    done = []
    task.ended.connect(done.append)
    process_until(lambda: bool(done), timeout=300)
    heartbeat.stop()
    assert done == [True], task.error
    assert heartbeat.worst_late < 2.0, f"the UI froze for {heartbeat.worst_late:.2f} s"
    assert heartbeat.ticks > 5
    assert Path(config.output).is_file()
    assert len(panel.epochs) == 2 and panel.steps
    assert "Mean IoU" in panel.summary.text() and "model.geofm" in panel.summary.text()
    assert panel.progress.value() == 100


def test_cancel_leaves_no_partial_files(plugin, tmp_path):
    config, folder = _train_config(plugin, tmp_path, "cancel", epochs=3)
    before = set(os.listdir(folder))
    task = plugin.start_training(config)
    panel = plugin.dock.views[-1]
    task.engine_event.connect(lambda event: panel.cancel() if type(event).__name__ == "StepEvent" else None)
    done = []
    task.ended.connect(done.append)
    process_until(lambda: bool(done), timeout=300)
    assert done == [False] and not task.error
    assert set(os.listdir(folder)) == before
    assert "cancelled" in panel.status.text().lower()


def test_two_tasks_stay_independent(plugin, tmp_path, qgis_iface):
    first, _ = _train_config(plugin, tmp_path, "a")
    second, _ = _train_config(plugin, tmp_path, "b")
    second.epochs = 2
    tasks = [plugin.start_training(first), plugin.start_training(second)]
    panels = plugin.dock.views[-2:]
    ended = []
    for task in tasks:
        task.ended.connect(ended.append)
    process_until(lambda: len(ended) == 2, timeout=400)
    assert ended == [True, True], [t.error for t in tasks]
    assert [len(p.epochs) for p in panels] == [1, 2]
    assert panels[0].output != panels[1].output
    assert all(Path(c.output).is_file() for c in (first, second))


def test_engine_error_reaches_the_message_bar_and_log(plugin, tmp_path, qgis_iface):
    from qgis.core import Qgis, QgsApplication

    config, folder = _train_config(plugin, tmp_path, "bad")
    config.labels = [str(folder / "missing.tif")]
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: logged.append((tag, text)))
    task = plugin.start_training(config)
    done = []
    task.ended.connect(done.append)
    process_until(lambda: bool(done), timeout=120)
    assert done == [False] and "missing.tif" in task.error
    critical = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert any("missing.tif" in m for m in critical), critical
    assert any(tag == "geofm" and "missing.tif" in text for tag, text in logged)
    assert "missing.tif" in plugin.dock.views[-1].summary.text()


def test_settings_the_weights_make_moot_are_greyed_out(plugin, scene_image, scene_labels):
    """The pretrained backbone's learning rate means nothing from scratch, the pretrained decoder nothing but with a
    backbone package: their widgets follow the weights choice."""
    dialog = _dialog(plugin, _add(QgsRasterLayer(str(scene_image), "image")),
                     _add(QgsRasterLayer(str(scene_labels), "labels")))
    lr, decoder = dialog.widgets["backbone_lr"], dialog.widgets["pretrained_decoder"]
    seen = {}
    for kind in ("none", "imagenet", "file", "backbone"):
        dialog.weights_combo.setCurrentIndex(dialog.weights_combo.findData(kind))
        seen[kind] = (lr.isEnabled(), decoder.isEnabled())
    assert seen == {"none": (False, False), "imagenet": (True, False), "file": (True, False),
                    "backbone": (True, True)}


def test_every_dialog_setting_reaches_the_config_and_is_remembered(plugin, tmp_path):
    """Each setting the schema marks for the dialog has a widget whose value reaches the TrainConfig; the saved
    ones come back when the dialog reopens; tooltips are the schema's help."""
    from geofm.core.config import TrainConfig
    from geofm.core.schema import default_of, settings_of
    from geofm.geofm_qgis.setting_widgets import set_value

    img, lbl = separable_scene(tmp_path, size=512)
    dialog = _dialog(plugin, _add(QgsRasterLayer(str(img), "image")), _add(QgsRasterLayer(str(lbl), "labels")))
    dialog.weights_combo.setCurrentIndex(dialog.weights_combo.findData("none"))
    dialog.output_widget.setFilePath(str(tmp_path / "m.geofm"))
    changed = {}
    for name, widget in dialog.widgets.items():
        s = dialog.settings[name]
        assert widget.toolTip() == s.describe()
        default = default_of(TrainConfig, name)
        if s.kind == "choice":
            value = next(n for n in s.registry.names() if n != default and n not in ("cuda", "mps"))
        elif s.kind == "bool":
            value = not default
        elif s.kind == "float":
            value = round(min(default * 2 if default else 0.1, s.maximum), 6)
        else:
            value = int(min(default + 32, s.maximum))
        set_value(s, widget, value)
        changed[name] = value
    config = dialog.config()
    for name, value in changed.items():
        assert getattr(config, name) == pytest.approx(value), name
    hand_laid = {"images", "labels", "label_field", "classes", "align_labels", "weights", "output"}
    assert {s.name for s in settings_of(TrainConfig) if s.exposed("dialog")} == set(dialog.widgets) | hand_laid
    dialog.remember()
    dialog.close()
    again = plugin.open_train()
    for s in settings_of(TrainConfig):
        if s.exposed("saved") and s.name in changed:
            assert again.setting_values()[s.name] == pytest.approx(changed[s.name]), s.name
    assert again.weights_combo.currentData() == "none" and again.output_widget.filePath() == str(tmp_path / "m.geofm")
    again.close()


def test_a_former_default_remembered_by_an_older_geofm_follows_the_new_default(plugin):
    """An older geofm remembered every value; one equal to a default that has since changed (validation share 20 %)
    was not the user's choice, so the dialog shows today's default. Values the user changed are kept, and from now on
    only changed values are remembered."""
    from qgis.core import QgsSettings

    from geofm.geofm_qgis import settings

    store = QgsSettings()
    store.setValue(settings.PREFIX + "val_fraction", 0.2)  # as geofm before this version stored it
    store.setValue(settings.PREFIX + "tile_size", 256)
    store.setValue(settings.PREFIX + "class_weights", True)  # once on or off; on meant inverse frequency
    dialog = plugin.open_train()
    assert dialog.setting_values()["val_fraction"] == 0.0
    assert dialog.setting_values()["tile_size"] == 256
    assert dialog.setting_values()["class_weights"] == "inverse"
    dialog.remember()
    dialog.close()
    assert store.value(settings.PREFIX + "val_fraction") is None
    assert int(store.value(settings.PREFIX + "tile_size")) == 256
    store.setValue(settings.PREFIX + "val_fraction", 0.2)  # chosen in this version: kept
    again = plugin.open_train()
    assert again.setting_values()["val_fraction"] == pytest.approx(0.2)
    again.close()


def test_a_tolerated_crs_difference_stays_in_the_panel_and_reaches_the_message_bar_and_log(plugin, tmp_path,
                                                                                            qgis_iface):
    from qgis.core import Qgis, QgsApplication

    from geofm.core.config import TrainConfig

    from rasters import retagged_scene

    img, lbl = retagged_scene(tmp_path)
    config = TrainConfig(images=[str(img)], labels=[str(lbl)], backbone="resnet18", weights="none", decoder="simple",
                         tile_size=64, overlap=50, batch_size=8, epochs=2, val_fraction=0.25, split_block=64,
                         output=str(tmp_path / "model.geofm"))
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: logged.append((tag, text, level)))
    task = plugin.start_training(config)
    panel = plugin.dock.views[-1]
    order = []
    task.engine_event.connect(lambda event: order.append(type(event).__name__))
    done = []
    task.ended.connect(done.append)
    process_until(lambda: bool(done), timeout=300)
    assert done == [True], task.error
    # the warning came before the steps, and the steps did not overwrite it
    assert order.index("WarningEvent") < order.index("StepEvent") and order.count("StepEvent") > 1
    assert "EPSG:23033" in panel.warnings_label.text() and not panel.warnings_label.isHidden()
    assert panel.warnings == [task.warnings[0]] and "EPSG:23033" not in panel.status.text()
    warned = [m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning) if "EPSG:23033" in m]
    assert len(warned) == 1, warned
    assert any(tag == "geofm" and "EPSG:23033" in text and level == Qgis.MessageLevel.Warning
               for tag, text, level in logged)
    assert panel.progress.value() == 100


def test_the_panel_shows_preparation_and_core_progress(plugin, tmp_path):
    from geofm.core.config import TrainConfig
    from geofm.core.events import ProgressEvent, StartEvent, StepEvent
    from geofm.geofm_qgis.engine_task import EngineTask
    from geofm.geofm_qgis.training_dock import TrainingDock

    img, lbl = separable_scene(tmp_path, size=128)
    config = TrainConfig(images=[str(img)], labels=[str(lbl)], backbone="resnet18", weights="none", tile_size=64,
                         epochs=1, output=str(tmp_path / "model.geofm"))
    task = EngineTask("geofm: training", lambda cancel: iter(()))  # never started: the view is fed by hand
    panel = TrainingDock(plugin.open_predict, lambda _kind, _config: None).add_run(task, config, "training")
    panel.on_event(ProgressEvent(3, 9, "tiling", "tiling"))
    assert "tiling 3 of 9" in panel.status.text() and 0 < panel.progress.value() < 5
    panel.on_event(StartEvent(2, 4, 32, 8, "cpu"))
    panel.on_event(StepEvent(1, 2, 0.5, 1e-3, 10.0))
    assert panel.progress.value() == int(100 * panel.tracker.fraction) and 5 < panel.progress.value() < 50
    assert "ETA" in panel.status.text()
    panel.on_event(StepEvent(1, 4, 0.4, 1e-3, 10.0))  # the epoch's last step: the loop validates next
    assert "validating on 8 tiles" in panel.status.text()


def test_grid_words_for_a_geographic_and_a_custom_crs(plugin, scene_polygons, tmp_path):
    """Degrees are not read as 683 km; a custom CRS is named from its WKT, not "()"; labels that need aligning are
    aligned by Train itself, which the dialog says instead of a command-line fix."""
    import numpy as np
    from test_grid import CUSTOM_LCC

    from rasters import write_raster

    image = _add(QgsRasterLayer(str(write_raster(tmp_path / "geo.tif", np.ones((3, 128, 128), np.uint16),
                                                 crs="EPSG:4326", origin=(10.0, 50.0), res=0.0003)), "geo image"))
    coarse = _add(QgsRasterLayer(str(write_raster(tmp_path / "geo_labels.tif", np.ones((64, 64), np.uint8),
                                                  crs="EPSG:4326", origin=(10.0, 50.0), res=0.0006, nodata=0)),
                                 "geo labels"))
    dialog = _dialog(plugin, image, coarse)
    dialog.tile_spin.setValue(64)
    text = dialog.grid_label.text()
    assert "on the fly" in text and "none needed" in text and "--" not in text and "km" not in text, text
    assert "about 21" in text  # 0.0003° of longitude at 50° N, on the ground
    assert dialog.config().align_labels
    dialog.close()

    custom = _add(QgsRasterLayer(str(write_raster(tmp_path / "custom.tif", np.ones((3, 128, 128), np.uint16),
                                                  crs=CUSTOM_LCC, origin=(633_000, 227_000))), "custom"))
    dialog = _dialog(plugin, custom, _add(QgsVectorLayer(str(scene_polygons), "polygons", "ogr")), "label")
    text = dialog.grid_label.text()
    assert "Lambert NC custom" in text and "()" not in text and "unnamed" not in text.lower(), text
    dialog.close()
