"""The plugin loads into QGIS, adds its menu, toolbar and Processing provider, and unloads cleanly."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication

import geofm
from geofm.geofm_qgis import deps, plugin


@pytest.fixture
def loaded(qgis_iface):
    instance = geofm.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()


def test_menu_toolbar_and_provider(loaded, qgis_iface):
    texts = [a.text() for a in loaded.actions]
    assert texts == ["Train model…", "Predict…", "Model info…", "Pretrain backbone…"]
    menus = [call.args for call in qgis_iface.addPluginToRasterMenu.call_args_list]
    assert all(menu == plugin.MENU for menu, _ in menus[-4:])
    assert [a.text() for a in loaded.toolbar.actions()] == texts
    provider = QgsApplication.processingRegistry().providerById("geofm")
    assert provider is not None
    assert {a.id() for a in provider.algorithms()} == {"geofm:train", "geofm:predict", "geofm:export",
                                                        "geofm:pretrain"}
    assert loaded.deps_dialog is None  # everything is installed here: no dialog


def test_unload_removes_everything(qgis_iface):
    instance = geofm.classFactory(qgis_iface)
    instance.initGui()
    actions = list(instance.actions)
    instance.unload()
    assert QgsApplication.processingRegistry().providerById("geofm") is None
    removed = [call.args[1] for call in qgis_iface.removePluginRasterMenu.call_args_list]
    assert all(a in removed for a in actions)


def test_model_info_opens_without_a_package(loaded):
    dialog = loaded.open_info()
    assert "Choose a .geofm" in dialog.browser.toPlainText()
    dialog.close()


def test_device_is_named(loaded):
    from qgis_helpers import process_until

    dialog = loaded.open_train()
    process_until(lambda: dialog.engine_status.loaded, timeout=120)  # the device is named once torch has loaded
    text = dialog.device_label.text()
    assert any(word in text for word in ("NVIDIA", "Apple MPS", "CPU only")), text
    dialog.close()


def test_metadata_is_complete():
    from configparser import ConfigParser
    from pathlib import Path

    parser = ConfigParser()
    parser.read(Path(geofm.__file__).parent / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    for key in ("name", "description", "about", "version", "qgisMinimumVersion", "qgisMaximumVersion", "author",
                "email", "homepage", "repository", "tracker", "tags", "category", "icon", "license", "experimental"):
        assert general.get(key), key
    assert general["name"] == "geofm" and general["version"] == "0.2.0" and general["category"] == "Raster"
    assert (Path(geofm.__file__).parent / general["icon"]).is_file()
    assert deps.REQUIREMENTS.keys() == {"torch", "torchvision", "rasterio"}


def test_message_bar_shows_angle_brackets_and_a_success_replaces_old_failures(qgis_iface):
    from qgis.core import Qgis
    from qgis.gui import QgsMessageBar

    from geofm.geofm_qgis.messages import push

    bar = QgsMessageBar()
    push(bar, "Training failed", "could not get the weights (<urlopen error [Errno -2] Name or service not known>)",
         Qgis.MessageLevel.Critical)
    assert "&lt;urlopen error" in bar.currentItem().text()  # shown as text, not swallowed as an HTML tag
    push(bar, "geofm", "Training finished.", Qgis.MessageLevel.Success, 5)
    assert bar.items() == [bar.currentItem()] and "finished" in bar.currentItem().text()


def test_a_long_message_is_shown_whole_and_main_window_failures_time_out(qgis_iface, tmp_path):
    """Bar items showed 1.5 lines: the key words of a band-mismatch message were cut off. A failure on the main
    window stayed for ever above later runs; a success removes geofm's old messages, and only geofm's."""
    from qgis.core import Qgis
    from qgis.gui import QgsMessageBar
    from qgis.PyQt.QtCore import QCoreApplication
    from qgis.PyQt.QtWidgets import QDialog, QTextBrowser, QVBoxLayout

    from geofm.geofm_qgis.messages import MAIN_WINDOW_FAILURE_SECONDS, push

    dialog = QDialog()
    bar = QgsMessageBar(dialog)
    QVBoxLayout(dialog).addWidget(bar)
    dialog.resize(700, 400)
    dialog.show()
    text = ("/data/scene_2024.tif has 3 bands but the model was trained on 4 (blue, green, red, near infrared). "
            "Pick a raster with the same bands in the same order as the training image, for example the "
            "4-band stack it was made from; a 3-band RGB export of it will not do. KEY WORDS AT THE END.")
    push(bar, "Cannot predict yet", text)
    for _ in range(5):  # let the layout give the item its height, as the screen would
        QCoreApplication.processEvents()
    browser = bar.currentItem().findChild(QTextBrowser)
    assert browser.verticalScrollBar().maximum() == 0, "the text scrolls: part of it is hidden"
    assert browser.height() >= 3 * browser.fontMetrics().lineSpacing()
    assert bar.currentItem().height() >= browser.height()  # the item, hence the bar, is as tall as the text
    assert "KEY WORDS AT THE END" in browser.toPlainText()
    assert bar.currentItem().duration() == 0  # in a dialog an error stays until read
    dialog.grab().save(str(tmp_path / "long_message.png"))

    main = QgsMessageBar()
    main.pushMessage("Other plugin", "its own note", Qgis.MessageLevel.Info, 0)
    push(main, "Training failed", "the output folder does not exist", Qgis.MessageLevel.Critical)
    assert main.currentItem().duration() == MAIN_WINDOW_FAILURE_SECONDS
    push(main, "geofm", "Training finished.", Qgis.MessageLevel.Success, 8)
    texts = [item.text() for item in main.items()]
    assert not any("does not exist" in t for t in texts) and any("its own note" in t for t in texts), texts
