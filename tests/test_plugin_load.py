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
