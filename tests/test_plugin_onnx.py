"""ONNX in QGIS: the 'geofm:export' algorithm, predicting with an .onnx, the Model info dialog's export and the
predict-only mode of the dependency check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from qgis.core import QgsPalettedRasterRenderer, QgsProcessingContext, QgsProcessingFeedback, QgsProject

import geofm
from geofm.core.classes import ClassMap
from geofm.core.model import build_model
from geofm.core.normalise import BandStats
from geofm.core.package import package_metadata, save_package
from geofm.geofm_qgis import deps
from geofm.geofm_qgis.package_info import ModelInfoDialog, read_metadata

from qgis_helpers import process_until, run_in_fresh_qgis
from rasters import separable_scene

REPO = Path(geofm.__file__).resolve().parent
CLASSES = ClassMap.from_list(
    [{"value": 10, "name": "water", "colour": "#0000ff"}, {"value": 20, "name": "forest", "colour": "#00aa00"},
     {"value": 30, "name": "urban", "colour": "#ff0000"}]
)  # fmt: skip


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A small real package (resnet18, tile 64, 4 bands, untrained) and a 4-band image to predict."""
    folder = tmp_path_factory.mktemp("onnx_package")
    image, _ = separable_scene(folder, size=128)
    torch.manual_seed(0)
    model = build_model("resnet18", "simple", in_channels=4, num_classes=3)
    stats = BandStats([100.0] * 4, [40.0] * 4)
    path = folder / "model.geofm"
    save_package(path, model, package_metadata(classes=CLASSES, band_count=4, tile_size=64, stats=stats,
                                               resolution=(10.0, 10.0), crs="EPSG:32633"))
    return path, image


def test_export_algorithm_writes_an_onnx_that_predict_styles(provider, package, tmp_path):
    import processing

    model, image = package
    onnx_path = str(tmp_path / "model.onnx")
    result = processing.run("geofm:export", {"MODEL": str(model), "OUTPUT": onnx_path, "NODATA": -9999},
                            feedback=QgsProcessingFeedback())
    assert result["OUTPUT"] == onnx_path
    meta = read_metadata(onnx_path)
    assert meta["classes"] == CLASSES.to_list() and meta["onnx"]["nodata"] == -9999

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    output = str(tmp_path / "classes.tif")
    result = processing.runAndLoadResults("geofm:predict", {"MODEL": onnx_path, "INPUT": str(image), "OUTPUT": output},
                                          context=context, feedback=QgsProcessingFeedback())
    assert result["OUTPUT"] == output
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == output]
    assert layers and isinstance(layers[0].renderer(), QgsPalettedRasterRenderer)
    assert [c.label for c in layers[0].renderer().classes()] == CLASSES.names


def test_export_algorithm_reports_a_bad_package_plainly(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    notes = tmp_path / "notes.geofm"
    notes.write_text("hello")
    with pytest.raises(QgsProcessingException, match="notes.geofm"):
        processing.run("geofm:export", {"MODEL": str(notes), "OUTPUT": str(tmp_path / "m.onnx")})
    assert not (tmp_path / "m.onnx").exists()


def test_model_info_exports_and_then_shows_the_onnx(package, tmp_path):
    model, _ = package
    dialog = ModelInfoDialog(path=str(model))
    assert dialog.export_button.isEnabled()
    out = tmp_path / "exported.onnx"
    task = dialog.export_to(str(out))
    ended = []
    task.ended.connect(ended.append)
    process_until(lambda: bool(ended), timeout=180)
    assert ended == [True], task.error
    assert out.is_file() and "Exported to" in dialog.bar.currentItem().text()
    dialog.file_widget.setFilePath(str(out))
    text = dialog.browser.toPlainText()
    assert "ONNX model exported by geofm" in text and "forest" in text and "Tile size: 64" in text
    assert not dialog.export_button.isEnabled()  # an .onnx is already exported


def test_predict_dialog_takes_an_onnx_and_refuses_a_foreign_one(plugin, package, tmp_path):
    from geofm.core.onnx_export import export_onnx

    model, _ = package
    exported = export_onnx(model, tmp_path / "m.onnx")
    dialog = plugin.open_predict()
    dialog.package_widget.setFilePath(str(exported))
    assert dialog.metadata is not None and "ONNX model exported by geofm" in dialog.summary.toPlainText()
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"\x08\x08")  # an ONNX header (IR version 8) and nothing else: no geofm metadata
    dialog.package_widget.setFilePath(str(foreign))
    assert dialog.metadata is None and "no geofm metadata" in dialog.summary.toPlainText()
    dialog.close()


def test_predict_only_mode_offers_the_lighter_install(monkeypatch, tmp_path, qgis_iface):
    from geofm.geofm_qgis.deps_dialog import DependencyDialog

    real = deps._find
    monkeypatch.setattr(deps, "_find", lambda m: None if m in ("torch", "torchvision") else real(m))
    assert deps.engine_mode() == deps.PREDICT_ONLY
    dialog = DependencyDialog(deps.missing_dependencies(), tmp_path)
    assert "already predicts" in " ".join(w.text() for w in dialog.findChildren(type(dialog.status)))
    assert dialog.light_button.isHidden()

    monkeypatch.setattr(deps, "_find", lambda m: None if m in ("torch", "torchvision", "onnxruntime") else real(m))
    assert deps.engine_mode() == deps.NO_ENGINE
    dialog = DependencyDialog(deps.missing_dependencies(), tmp_path)
    assert not dialog.light_button.isHidden()
    assert "onnxruntime" in dialog.light_edit.text() and "torch" not in dialog.light_edit.text()
    assert "torch==" in dialog.command_edit.text()


def test_plugin_predicts_with_an_onnx_when_torch_is_missing(package, tmp_path):
    from geofm.core.onnx_export import export_onnx

    model, image = package
    exported = export_onnx(model, tmp_path / "m.onnx")
    output = tmp_path / "classes.tif"
    out = run_in_fresh_qgis(f"""
        sys.modules["torch"] = None  # torch cannot be imported: only onnxruntime and rasterio are there
        sys.path.insert(0, {str(REPO.parent)!r})
        sys.path.insert(0, {str(REPO / "tests")!r})
        import geofm
        from geofm.geofm_qgis import deps
        from qgis.core import QgsProject, QgsRasterLayer
        from qgis_helpers import process_until
        plugin = geofm.classFactory(iface)
        plugin.initGui()
        print("MODE", deps.engine_mode(), "DIALOG", plugin.deps_dialog is not None)
        layer = QgsRasterLayer({str(image)!r}, "image")
        QgsProject.instance().addMapLayer(layer)
        dialog = plugin.open_predict()
        dialog.package_widget.setFilePath({str(exported)!r})
        dialog.raster_combo.setLayer(layer)
        dialog.output_widget.setFilePath({str(output)!r})
        task = plugin.start_prediction(dialog.request())
        ended = []
        task.ended.connect(ended.append)
        process_until(lambda: bool(ended), timeout=120)
        print("ENDED", ended, task.error)
        print("TORCH", sorted(m for m in sys.modules if m.split(".")[0] == "torch" and sys.modules[m] is not None))
        plugin.unload()
    """, timeout=180)
    assert "MODE predict-only DIALOG False" in out.stdout, out.stdout + out.stderr[-3000:]
    assert "ENDED [True]" in out.stdout and "TORCH []" in out.stdout, out.stdout + out.stderr[-3000:]
    assert output.is_file()
    import rasterio

    with rasterio.open(output) as dst:
        assert set(np.unique(dst.read(1))) <= {10, 20, 30, 255}
